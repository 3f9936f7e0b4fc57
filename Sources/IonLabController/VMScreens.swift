import Foundation
import IonLabAdminAPI
import IonLabProvision
import Libvirt

/// A VM's screen: a screenshot through libvirt, and where its graphical console listens.
extension VMManager {
    func screenshot(of name: String) async throws -> Screenshot {
        let record = try vm(name)
        let domain = try await domain(of: record)
        let state = try await domain.info().state
        guard [.running, .blocked, .paused].contains(state) else {
            throw ControllerError("VM \(name) is not running (it is \(state.rawValue)): it has no screen")
        }
        return try await Screenshot.take(of: domain)
    }

    /// The graphical console from the domain's live XML, with its password (the secure XML).
    func display(of name: String) async throws -> DisplayInfo {
        let record = try vm(name)
        let backend = try config.backend(named: record.backend)
        let domain = try await domain(of: record)
        guard try await domain.isActive() else { throw ControllerError("VM \(name) is not running: its console listens only while it runs") }
        guard let graphics = GraphicsXML(domainXML: try await domain.secureXML()) else {
            throw ControllerError("VM \(name) has no graphical console (it was created before ionlab gave VMs one)")
        }
        return DisplayInfo(backend: backend.name, uri: backend.uri, type: graphics.type, socket: graphics.socket, password: graphics.password)
    }
}
