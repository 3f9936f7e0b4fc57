import Foundation
import IonLabWire
import NIOCore
import NIOPosix

/// The CLI's side of the admin socket.
public struct AdminClient: Sendable {
    let mux: MuxConnection

    /// Connects, says hello, runs `body`, and closes.
    public static func with<R: Sendable>(paths: StatePaths, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                                         _ body: @Sendable @escaping (AdminClient) async throws -> R) async throws -> R {
        let channel: NIOAsyncChannel<Frame, Frame>
        do {
            channel = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: paths.adminSocket) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            throw ControllerError("the controller is not running (nothing answers at \(paths.adminSocket)); start it with `ionlab serve`")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let mux = MuxConnection(writer: outbound, side: .client)
            try await mux.sendControl(.hello(Hello(role: .admin, software: "ionlab cli")))
            var frames = inbound.makeAsyncIterator()
            guard let first = try await frames.next(), case .control(.welcome) = try mux.route(first) else {
                throw ControllerError("the controller at \(paths.adminSocket) did not answer the hello")
            }
            let reader = frames
            return try await withThrowingTaskGroup(of: R?.self) { group in
                group.addTask {
                    var frames = reader
                    do {
                        while let frame = try await frames.next() { _ = try mux.route(frame) }
                        mux.fail(ControllerError("the controller closed the connection"))
                    } catch {
                        mux.fail(ControllerError("lost the connection to the controller: \(Format.error(error))"))
                    }
                    return nil
                }
                group.addTask { try await body(AdminClient(mux: mux)) }
                while let result = try await group.next() {
                    if let result {
                        group.cancelAll()
                        return result
                    }
                }
                throw ControllerError("lost the connection to the controller")
            }
        }
    }

    /// True if a controller answers on the state directory's admin socket.
    static func isServing(paths: StatePaths, group: EventLoopGroup) async -> Bool {
        guard let channel = try? await ClientBootstrap(group: group).connect(unixDomainSocketPath: paths.adminSocket).get() else {
            return false
        }
        try? await channel.close()
        return true
    }

    /// Opens a request stream.
    public func request(_ request: AdminRequest) async throws -> WireStream {
        let stream = try mux.openStream()
        try await stream.send(.admin(request))
        return stream
    }

    /// A request whose reply comes in parts (each read by `part`) and ends with `ok`; a `failure` is thrown.
    public func collect<T>(_ request: AdminRequest, _ part: (Message) -> [T]?) async throws -> [T] {
        let stream = try await self.request(request)
        defer { stream.close() }
        var items: [T] = []
        while true {
            let reply = try await stream.nextMessage()
            if let chunk = part(reply) {
                items += chunk
                continue
            }
            switch reply {
            case .ok: return items
            case .failure(let failure): throw failure
            default: throw ControllerError("unexpected \(reply.name) in a listing")
            }
        }
    }

    /// Every agent the controller knows.
    public func agents() async throws -> [AgentStatus] {
        try await collect(.listAgents) { if case .agents(let part) = $0 { part } else { nil } }
    }

    /// Jobs from the store, newest first.
    public func jobs(agent: String?, limit: Int) async throws -> [JobRecord] {
        try await collect(.jobs(agent: agent, limit: limit)) { if case .jobs(let part) = $0 { part } else { nil } }
    }

    /// Every VM the controller provisioned.
    public func vms() async throws -> [VMRecord] {
        try await collect(.vmList) { if case .vms(let part) = $0 { part } else { nil } }
    }

    /// The VMs of one fleet (or of all), with their agents' state.
    public func fleetStatus(_ fleet: String?) async throws -> [VMStatus] {
        try await collect(.fleetStatus(name: fleet)) { if case .fleetStatus(let part) = $0 { part } else { nil } }
    }

    /// A request with a single reply message; a `failure` reply is thrown.
    public func call(_ request: AdminRequest) async throws -> Message {
        let stream = try await self.request(request)
        defer { stream.close() }
        let reply = try await stream.nextMessage()
        if case .failure(let failure) = reply { throw failure }
        return reply
    }
}
