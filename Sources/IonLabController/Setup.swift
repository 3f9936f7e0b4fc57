import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabControllerConfig
import IonLabPKI

/// `ionlab init`: the state directory, the CA, the controller's server certificate, its config and store.
public enum ControllerSetup {
    public struct Outcome {
        public var created: Bool
        public var pin: CAPin
        public var config: ControllerConfig
    }

    public static func initialize(paths: StatePaths, listen: Endpoint?, advertise: [Endpoint], force: Bool) throws -> Outcome {
        if paths.isInitialized && !force {
            let ca = try PEMFile.readCertificate(path: paths.caCertificate)
            let config = FileManager.default.fileExists(atPath: paths.config) ? try ControllerConfig.load(path: paths.config) : ControllerConfig()
            return Outcome(created: false, pin: SPKIPin.of(ca), config: config)
        }
        do {
            try FileManager.default.createDirectory(atPath: paths.directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ControllerError("cannot create \(paths.directory): \(error.localizedDescription)")
        }
        chmod(paths.directory, 0o700)
        var config = ControllerConfig()
        if let listen { config.listen = listen }
        config.advertise = advertise
        let ca = try CertificateAuthority.create(commonName: "ionlab CA \(HostName.current)")
        var hosts = ["localhost", "127.0.0.1", "::1", "10.0.2.2", config.listen.host]
        hosts += advertise.map(\.host)
        let server = try ca.issueServerCertificate(hosts: Array(Set(hosts)).sorted())
        try ca.identity.save(directory: paths.directory, name: paths.caName)
        try server.save(directory: paths.directory, name: paths.serverName)
        try PEMFile.write(config.yaml(), path: paths.config, mode: 0o644)
        let catalog = paths.resolve(config.imageCatalog)
        if !FileManager.default.fileExists(atPath: catalog) { try PEMFile.write(ImageCatalog.defaultYAML, path: catalog, mode: 0o644) }
        _ = try Store(path: paths.database)
        return Outcome(created: true, pin: ca.pin, config: config)
    }
}

enum HostName {
    static var current: String {
        var buffer = [CChar](repeating: 0, count: 256)
        return gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "localhost"
    }
}
