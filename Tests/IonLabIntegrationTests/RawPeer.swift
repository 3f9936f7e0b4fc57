import Foundation
import IonLabAgentProtocol
import IonLabConfig
import IonLabPKI
import IonLabWire
import NIOCore
import NIOPosix
import NIOSSL

/// A hand-driven peer for misbehaving on purpose: raw TCP, or TLS that trusts the controller by its pin
/// and then writes whatever bytes a test wants.
struct RawPeer {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func tcp(port: Int) async throws -> RawPeer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return RawPeer(channel: channel)
    }

    /// A TLS connection without a client certificate, verified against the controller's CA pin.
    static func tls(port: Int, pin: CAPin) async throws -> RawPeer {
        let context = try TLSSetup.clientContext(identity: nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try TLSSetup.clientHandler(context: context, pin: pin))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return RawPeer(channel: channel)
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Sends bytes the controller answers by closing the connection: that it closed before the write was done
    /// (on a loaded machine it can) is that answer too, so only other failures are thrown.
    func sendExpectingClose(_ bytes: [UInt8]) async throws {
        do {
            try await send(bytes)
        } catch ChannelError.ioOnClosedChannel {
        } catch let error as IOError where [EPIPE, ECONNRESET].contains(error.errnoCode) {
        }
    }

    /// Sends one well-formed frame carrying a message.
    func send<Message: WireMessage>(_ message: Message) async throws {
        let payload = try MessageCoding.encode(message)
        var buffer = ByteBuffer()
        try FrameEncoder().encode(data: Frame(kind: .message, stream: 0, payload: payload), out: &buffer)
        try await channel.channel.writeAndFlush(buffer)
    }

    /// Everything the controller sends until it closes the connection (or the timeout passes). Either way
    /// the connection is closed afterwards.
    func readUntilClosed(timeout: Double = 10) async throws -> [UInt8] {
        let channel = self.channel
        defer { channel.outbound.finish() }
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                var bytes: [UInt8] = []
                do {
                    for try await chunk in channel.inbound { bytes += chunk.readableBytesView }
                } catch {
                    // A reset or an unclean TLS close still means "closed".
                }
                return bytes
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            try? await channel.channel.close()
            guard let first else { throw LabError("the controller did not close the connection within \(timeout)s") }
            return first
        }
    }

    /// Decodes the frames in `bytes` into the controller's messages.
    static func messages(in bytes: [UInt8]) throws -> [ControllerControl] {
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [ControllerControl] = []
        while let length = buffer.readInteger(as: UInt32.self) {
            guard let kind = buffer.readInteger(as: UInt8.self), buffer.readInteger(as: UInt32.self) != nil,
                  let payload = buffer.readSlice(length: Int(length) - 5) else { break }
            if kind == FrameKind.message.rawValue { messages.append(try MessageCoding.decode(payload)) }
        }
        return messages
    }
}
