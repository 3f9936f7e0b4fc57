import IonLabAgentProtocol
import IonLabConfig
import IonLabTransfer
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore

/// The agent's end of port forwards: connections it opens for the controller, and listeners of reverse
/// forwards, whose accepted connections wait, a bounded number for a bounded time, for the controller to
/// join them with an `attach` stream. The agent opens no stream of its own.
final class ForwardHandler: Sendable {
    /// Accepted connections that may wait to be joined, across all listeners; more are closed at once.
    static let waitingLimit = 64
    static let patience: Duration = .seconds(30)

    private let group: EventLoopGroup
    private let waiting = NIOLockedValueBox(Waiting())

    private struct Waiting {
        var connections: [UInt64: ForwardedConnection] = [:]
        var nextID: UInt64 = 1
    }

    init(group: EventLoopGroup) { self.group = group }

    /// A forward: connects to `endpoint` here and relays.
    func connect(to endpoint: Endpoint, on stream: AgentStream) async throws {
        let connection: ForwardedConnection
        do {
            connection = try await ForwardSockets.connect(to: endpoint, group: group)
        } catch {
            throw Failure("cannot connect to \(endpoint): \(ForwardSockets.describe(error))")
        }
        try await ConnectionRelay.run(connection, over: stream)
    }

    /// A reverse forward: listens on `endpoint` until the controller closes the stream, announcing each
    /// connection.
    func listen(on endpoint: Endpoint, stream: AgentStream) async throws {
        let listener: ForwardSockets.Listener
        do {
            listener = try await ForwardSockets.listen(on: endpoint, group: group)
        } catch {
            throw Failure("cannot listen on \(endpoint): \(ForwardSockets.describe(error))")
        }
        try await listener.executeThenClose { connections in
            try await stream.send(.listening(port: UInt16(listener.channel.localAddress?.port ?? endpoint.port)))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                // The controller ends a reverse forward by closing its stream, which fails this read.
                tasks.addTask {
                    let message = try await stream.next()
                    throw WireError.unexpected("\(message) on a listening stream")
                }
                tasks.addTask {
                    for try await connection in connections {
                        guard let id = self.admit(connection) else {
                            connection.channel.close(promise: nil)
                            continue
                        }
                        try await stream.send(.accepted(connection: id))
                    }
                }
                defer { tasks.cancelAll() }
                try await tasks.next()
            }
        }
    }

    /// Joins a connection a listener accepted, and relays.
    func attach(_ id: UInt64, on stream: AgentStream) async throws {
        guard let connection = take(id) else { throw Failure("no accepted connection \(id) is waiting") }
        try await ConnectionRelay.run(connection, over: stream)
    }

    /// Keeps an accepted connection until it is joined or its patience runs out; nil when too many wait.
    private func admit(_ connection: ForwardedConnection) -> UInt64? {
        let id: UInt64? = waiting.withLockedValue { waiting in
            guard waiting.connections.count < Self.waitingLimit else { return nil }
            defer { waiting.nextID += 1 }
            waiting.connections[waiting.nextID] = connection
            return waiting.nextID
        }
        if let id {
            connection.channel.eventLoop.scheduleTask(in: .seconds(Int64(Self.patience.components.seconds))) {
                self.take(id)?.channel.close(promise: nil)
            }
        }
        return id
    }

    private func take(_ id: UInt64) -> ForwardedConnection? {
        waiting.withLockedValue { $0.connections.removeValue(forKey: id) }
    }

    /// Connections waiting to be joined, for tests.
    var waitingCount: Int { waiting.withLockedValue { $0.connections.count } }
}
