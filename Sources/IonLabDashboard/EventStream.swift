import Foundation
import HTTPTypes
import Hummingbird
import IonLabAdminAPI
import Synchronization

/// Server-sent events, as the page's `EventSource` reads them: one frame per event, its sequence number as
/// the id so that a reconnecting page resumes where it stopped (`Last-Event-ID`).
enum EventStreamFormat {
    /// `id: SEQ`, `data: JSON`, a blank line. The JSON is one line: the encoder escapes every newline.
    static func frame(_ event: Event) throws -> ByteBuffer {
        var buffer = ByteBuffer(string: "id: \(event.seq)\ndata: ")
        buffer.writeBytes(try Response.jsonEncoder.encode(event))
        buffer.writeString("\n\n")
        return buffer
    }

    /// A comment: `EventSource` ignores it, and writing it notices a page that left.
    static let keepalive = ByteBuffer(string: ": keepalive\n\n")
    /// Before the first event: how long a page waits before it reconnects.
    static let retry = ByteBuffer(string: "retry: 2000\n\n")
}

/// One page's event stream. Events go through a queue of a few hundred frames: a page that reads slower
/// than events come is closed rather than buffered for, and on reconnecting catches up from the store.
enum EventStreamResponse {
    /// Thrown into the source's follow when the page's queue is full.
    struct Behind: Error {}

    static func response(source: any DashboardSource, after: Int64?, limits: HTTPLimits) -> Response {
        Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
            let (frames, queue) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(limits.queuedEventFrames))
            let producer = Task {
                defer { queue.finish() }
                try await source.events(after: after, replay: limits.replayedEvents) { events in
                    for event in events {
                        guard case .enqueued = queue.yield(try EventStreamFormat.frame(event)) else { throw Behind() }
                    }
                }
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(limits.keepaliveSeconds))
                    queue.yield(EventStreamFormat.keepalive)
                }
            }
            defer {
                producer.cancel()
                ticker.cancel()
            }
            try await writer.write(EventStreamFormat.retry)
            for await frame in frames { try await writer.write(frame) }
            try await writer.finish(nil)
        })
    }
}
