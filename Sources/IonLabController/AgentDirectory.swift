import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol

/// The agents as the CLI sees them: what the store knows joined with who is connected, and revocation,
/// which also drops a connected agent.
struct AgentDirectory: Sendable {
    let store: Store
    let sessions: SessionRegistry
    let events: EventLog

    func statuses() throws -> [AgentStatus] {
        try store.agents().map { record in
            let session = sessions.session(named: record.name)
            let state: AgentStatus.State
            switch record.state {
            case .revoked: state = .revoked
            case .pending: state = .pending
            case .enrolled: state = session == nil ? .disconnected : .connected
            }
            return AgentStatus(name: record.name, state: state, lastSeen: session?.lastHeartbeat ?? record.lastSeen,
                               connectedSince: session?.connectedAt, health: session?.health ?? record.health)
        }
    }

    /// The agent's session, or a failure saying why there is none.
    func connectedSession(_ name: String) throws -> AgentSession {
        if let session = sessions.session(named: name) { return session }
        guard let record = try store.agent(name) else { throw Failure("no agent named '\(name)'") }
        let seen = record.lastSeen.map { ", last seen \(Format.time($0))" } ?? ""
        throw Failure("agent \(name) is not connected (\(record.state.rawValue)\(seen))")
    }

    /// Revokes every certificate of the agent; a connected agent is told and dropped.
    func revoke(_ name: String) async throws {
        guard try store.revoke(agent: name) else { throw ControllerError("no agent named '\(name)'") }
        events.emit(.agentRevoked, agent: name, "certificates revoked; its next connection is refused")
        if let session = sessions.session(named: name) {
            await session.refuse(Refusal(.revoked, "agent \(name) was revoked"))
        }
    }
}
