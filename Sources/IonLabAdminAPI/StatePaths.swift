import Foundation

/// The files of a controller's state directory.
public struct StatePaths: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// `--state-dir`, else `IONLAB_STATE_DIR`, else `~/.local/state/ionlab` (or /var/lib/ionlab for root).
    public static func resolve(_ option: String?) -> StatePaths {
        if let option, !option.isEmpty { return StatePaths(directory: absolute(option)) }
        if let env = ProcessInfo.processInfo.environment["IONLAB_STATE_DIR"], !env.isEmpty {
            return StatePaths(directory: absolute(env))
        }
        if getuid() == 0 { return StatePaths(directory: "/var/lib/ionlab") }
        let base = ProcessInfo.processInfo.environment["XDG_STATE_HOME"] ?? (NSHomeDirectory() + "/.local/state")
        return StatePaths(directory: base + "/ionlab")
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    public var config: String { "\(directory)/controller.yaml" }

    /// A path from the config: absolute, or relative to the state directory.
    public func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : "\(directory)/\(path)" }
    public var database: String { "\(directory)/ionlab.sqlite" }
    public var adminSocket: String { "\(directory)/admin.sock" }
    /// The bearer token of `serve --http` (0600).
    public var dashboardToken: String { "\(directory)/dashboard.token" }
    public var caName: String { "ca" }
    public var serverName: String { "server" }
    public var caCertificate: String { "\(directory)/ca.pem" }
    /// The key that turns secrets into digests before anything is stored (``SecretDigest``).
    public var secretKey: String { "\(directory)/secret.key" }
    /// The generated seed files a VM was given (`meta-data`, `agent.json`).
    public func seedDirectory(_ vm: String) -> String { "\(directory)/seeds/\(vm)" }

    public var isInitialized: Bool { FileManager.default.fileExists(atPath: caCertificate) }
}

extension AdminClient {
    /// Connects to the controller serving `paths`, says hello, runs `body`, and closes.
    public static func with<R: Sendable>(paths: StatePaths, _ body: @Sendable @escaping (AdminClient) async throws -> R) async throws -> R {
        try await with(socket: paths.adminSocket, body)
    }
}

/// A failure of the controller or of the CLI, told as one line.
public struct ControllerError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
