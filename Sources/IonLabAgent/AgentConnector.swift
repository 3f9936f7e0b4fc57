import IonLabConfig
import IonLabPKI
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Opens TLS connections to the controller, trusting it only through the CA pin.
public struct AgentConnector: Sendable {
    let endpoints: [Endpoint]
    let pin: CAPin
    let group: EventLoopGroup

    public init(endpoints: [Endpoint], pin: CAPin, group: EventLoopGroup) {
        self.endpoints = endpoints
        self.pin = pin
        self.group = group
    }

    /// Connects to the first endpoint that answers, with a client certificate when `identity` is given (none
    /// for enrollment). A pin mismatch is terminal; the rest is transient.
    public func connect(identity: Identity?) async throws -> NIOAsyncChannel<Frame, Frame> {
        let context = try TLSSetup.clientContext(identity: identity)
        var lastError: Error = WireError.connectionClosed
        for endpoint in endpoints {
            let rejection = NIOLockedValueBox<String?>(nil)
            do {
                let pin = self.pin
                let (channel, handshake) = try await ClientBootstrap(group: group)
                    .connectTimeout(.seconds(5))
                    .channelOption(.socketOption(.so_keepalive), value: 1)
                    .connect(host: endpoint.host, port: endpoint.port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let handler = try NIOSSLClientHandler(context: context, serverHostname: nil, customVerificationCallback: { chain, promise in
                                let problem = TLSSetup.verifyServerChain(chain, pin: pin)
                                rejection.withLockedValue { $0 = problem }
                                promise.succeed(problem == nil ? .certificateVerified : .failed)
                            })
                            let waiter = HandshakeWaiter(promise: channel.eventLoop.makePromise())
                            try channel.pipeline.syncOperations.addHandlers([handler, waiter])
                            try channel.pipeline.syncOperations.addFrameCodec()
                            return (try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel), waiter.done)
                        }
                    }
                do {
                    try await handshake.get()
                } catch {
                    try? await channel.channel.close()
                    throw error
                }
                return channel
            } catch {
                if let problem = rejection.withLockedValue({ $0 }) { throw AgentStop(message: "\(endpoint): \(problem)") }
                lastError = ConnectError(endpoint: endpoint, underlying: error)
            }
        }
        throw lastError
    }
}

/// A transient failure to reach an endpoint.
struct ConnectError: Error, CustomStringConvertible {
    let endpoint: Endpoint
    let underlying: Error
    var description: String { "cannot reach \(endpoint): \(underlying)" }
}

/// A terminal condition: retrying cannot help, so the agent stops and says why.
public struct AgentStop: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
