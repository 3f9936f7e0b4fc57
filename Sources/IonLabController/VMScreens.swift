import Foundation
import IonLabAdminAPI
import IonLabPictures
import IonLabProvision
import Libvirt

/// A VM's screen: a screenshot through libvirt, keys and the pointer through the hypervisor, and where its
/// graphical console listens.
extension VMManager: ScreenAccess {
    func screenshot(of name: String) async throws -> Screenshot {
        try await Screenshot.take(of: try await screenDomain(of: name))
    }

    func screen(of name: String) async throws -> Picture {
        try await Screenshot.picture(of: try await screenDomain(of: name))
    }

    func press(_ strokes: [[UInt32]], on name: String) async throws {
        let domain = try await screenDomain(of: name)
        for stroke in strokes { try await domain.sendKey(linuxKeycodes: stroke) }
    }

    func stirPointer(of name: String, for seconds: Double) async throws {
        let descriptor = try await screenDomain(of: name).openGraphics()
        try await ConsolePointer.stir(descriptor: descriptor, seconds: seconds)
    }

    /// The VM's domain when it has a screen now: running, with a display or a graphical console.
    private func screenDomain(of name: String) async throws -> Domain {
        let record = try vm(name)
        let domain = try await domain(of: record)
        let state = try await domain.info().state
        guard [.running, .blocked, .paused].contains(state) else {
            throw ControllerError("VM \(name) is not running (it is \(state.rawValue)): it has no screen")
        }
        guard DomainScreen.exists(inDomainXML: try await domain.xml()) else {
            throw ControllerError("VM \(name) has no screen: its domain has no display device and no graphical console")
        }
        return domain
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
