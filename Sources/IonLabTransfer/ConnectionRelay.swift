#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabConfig
import IonLabWire
import NIOCore
import NIOPosix

/// A forwarded TCP connection: bytes both ways, each direction closed on its own (a half-close).
public typealias ForwardedConnection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

/// Relays a TCP connection over a request stream, both directions at once, until both have ended.
///
/// Bytes from the socket go out as data, and its end of input as `eof`; data from the stream is written to
/// the socket, and `eof` shuts the socket's output, so a client that half-closes (sends a request, then
/// waits for the whole answer) works through a forward as it does directly. Flow control holds at both
/// ends: the socket is read only as the stream grants credit, and the stream is read only as the socket
/// takes writes. Anything else ends both: the stream is reset (its peer closes its socket) and this socket
/// is closed.
public enum ConnectionRelay {
    public static func run<Message: AgentStreamCarrier>(_ connection: ForwardedConnection, over stream: WireStream<Message>) async throws {
        defer { stream.close() }
        try await connection.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await bytes in inbound { try await stream.send(data: bytes, on: .content) }
                    try await stream.send(carrying: .eof)
                }
                group.addTask {
                    while true {
                        switch try await stream.nextCarriedItem() {
                        case .data(_, let bytes):
                            try await outbound.write(bytes)
                        case .message(.eof):
                            outbound.finish()
                            return
                        case .message(.failure(let failure)):
                            throw failure
                        case .message(let other):
                            throw WireError.unexpected("\(other.name) on a forwarded connection")
                        }
                    }
                }
                do {
                    while try await group.next() != nil {}
                } catch {
                    group.cancelAll()
                    stream.abort(error)
                    throw error
                }
            }
        }
    }
}

/// The sockets of port forwards, set up alike at every end: half-closes allowed, and reads as large as a
/// data frame, so that bulk transfers cost few frames.
public enum ForwardSockets {
    public typealias Listener = NIOAsyncChannel<ForwardedConnection, Never>

    /// Connects to `endpoint`; errors say what failed in a few words (``describe(_:)``).
    public static func connect(to endpoint: Endpoint, group: EventLoopGroup) async throws -> ForwardedConnection {
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.recvAllocator, value: readSizes)
            .connectTimeout(.seconds(10))
        // An address needs no resolver (which would cost a thread hop for every connection).
        if let address = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port) {
            return try await bootstrap.connect(to: address) { channel in wrap(channel) }
        }
        return try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in wrap(channel) }
    }

    /// Listens on `endpoint`.
    public static func listen(on endpoint: Endpoint, group: EventLoopGroup) async throws -> Listener {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.recvAllocator, value: readSizes)
            .bind(host: endpoint.host, port: endpoint.port) { channel in wrap(channel) }
    }

    /// Why a connect or a listen failed, in a few words: "connection refused", "address already in use".
    public static func describe(_ error: Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return describe(first.error) }
            return error.dnsAAAAError.map(describe) ?? error.dnsAError.map(describe) ?? "cannot resolve \(error.host)"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as ChannelError:
            if case .connectTimeout = error { return "timed out connecting" }
            return "\(error)"
        default:
            return "\(error)"
        }
    }

    // At most 64 KiB a read: larger buffers come from mmap (glibc's threshold is 128 KiB), and their page faults
    // cost more than the extra frames (measured with scripts/bench-forward.sh).
    private static let readSizes = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 << 10, maximum: 64 << 10)

    private static func wrap(_ channel: Channel) -> EventLoopFuture<ForwardedConnection> {
        channel.eventLoop.makeCompletedFuture {
            try ForwardedConnection(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }
}
