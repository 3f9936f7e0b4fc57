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

/// Frames of recent events, made once however many pages send them: with 20 pages open, a fan-out's 2,000
/// job events would otherwise be encoded 40,000 times.
final class FrameCache: Sendable {
    static let capacity = 4096
    private let frames = Mutex<[Int64: ByteBuffer]>([:])

    func frame(_ event: Event) throws -> ByteBuffer {
        if let made = frames.withLock({ $0[event.seq] }) { return made }
        let frame = try EventStreamFormat.frame(event)
        frames.withLock { frames in
            frames[event.seq] = frame
            // Keep the newest; a page far behind makes its old frames again.
            if frames.count > 2 * Self.capacity { frames = frames.filter { $0.key > event.seq - Int64(Self.capacity) } }
        }
        return frame
    }
}

/// One page's event stream. Events go through a queue of a few hundred frames: a page that stays behind is
/// closed rather than buffered for, and on reconnecting catches up from the store.
enum EventStreamResponse {
    /// Thrown into the source's follow when the page's queue is full.
    struct Behind: Error {}

    /// Queues a frame, waiting while the queue is full (a replay fills it at once); a page that stays behind for
    /// `patience` seconds is closed.
    private static func enqueue(_ frame: ByteBuffer, _ queue: AsyncStream<ByteBuffer>.Continuation, patience: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(patience)
        while case .dropped = queue.yield(frame) {
            guard ContinuousClock.now < deadline else { throw Behind() }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func response(source: any DashboardSource, after: Int64?, limits: HTTPLimits, cache: FrameCache) -> Response {
        Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
            let (frames, queue) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingOldest(limits.queuedEventFrames))
            let producer = Task {
                defer { queue.finish() }
                try await source.events(after: after, replay: limits.replayedEvents) { events in
                    for event in events { try await enqueue(try cache.frame(event), queue, patience: limits.behindSeconds) }
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
