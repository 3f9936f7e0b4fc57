import Crypto
import Foundation
import IonLabConfig

/// A file on the cloud-init seed ISO.
public struct SeedFile: Sendable {
    public var name: String
    public var contents: Data
    public var executable: Bool

    public init(name: String, contents: Data, executable: Bool = false) {
        self.name = name
        self.contents = contents
        self.executable = executable
    }

    public init(name: String, text: String) { self.init(name: name, contents: Data(text.utf8)) }
}

/// The NoCloud seed: an ISO 9660 image labelled `cidata` holding `user-data`, `meta-data` and, next to them,
/// the agent binary and its files (never inside user-data: large user-data makes cloud-init take minutes under TCG).
public struct Seed: Sendable {
    public let files: [SeedFile]

    /// The seed for one VM: the agent bundle's files plus the generated `meta-data` and `agent.json`.
    public init(bundle: AgentBundle, instanceID: String, hostname: String, agentConfigJSON: String) throws {
        var files = try bundle.seedFiles()
        files.append(SeedFile(name: "meta-data", text: Self.metaData(instanceID: instanceID, hostname: hostname)))
        files.append(SeedFile(name: "agent.json", text: agentConfigJSON))
        self.init(files: files)
    }

    public init(files: [SeedFile]) { self.files = files.sorted { $0.name < $1.name } }

    public static func metaData(instanceID: String, hostname: String) -> String {
        "instance-id: \(instanceID)\nlocal-hostname: \(hostname)\n"
    }

    /// The SHA-256 over every file's name and contents, in name order: the seed's identity.
    public var contentHash: String {
        var hasher = SHA256()
        for file in files {
            hasher.update(data: Data("\(file.name)\0\(file.contents.count)\0".utf8))
            hasher.update(data: file.contents)
        }
        return hasher.finalize().hexString
    }

    /// Writes the ISO with xorriso (or genisoimage) and returns its bytes. The seed holds the enrollment
    /// token, so the files exist only in a private directory (0700, made by mkdtemp), each mode 0600.
    public func buildISO() throws -> Data {
        let work = try PrivateDirectory(prefix: "ionlab-seed-")
        defer { work.remove() }
        let tree = try writeTree(in: work.path)
        let iso = "\(work.path)/seed.iso"
        let tool = try Self.isoTool()
        var arguments = tool.hasSuffix("xorriso") ? ["-as", "mkisofs"] : []
        // -rock records the files' own modes (0600, 0700 for the binary) and owner (root): in the guest only root
        // reads the seed's files through the file system.
        arguments += ["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output", iso, tree]
        try Command.run(tool, arguments)
        return try Data(contentsOf: URL(fileURLWithPath: iso))
    }

    /// Writes the seed's files into `cidata` under `directory`, readable by their owner only (0600, 0700 for
    /// executables), and returns that path.
    public func writeTree(in directory: String) throws -> String {
        let tree = "\(directory)/cidata"
        guard mkdir(tree, 0o700) == 0 else { throw ProvisionError("cannot create \(tree): \(String(cString: strerror(errno)))") }
        for file in files {
            let path = "\(tree)/\(file.name)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file.executable ? 0o700 : 0o600)
            guard fd >= 0 else { throw ProvisionError("cannot write seed file \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let written = file.contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == file.contents.count else { throw ProvisionError("cannot write seed file \(path)") }
        }
        return tree
    }

    static func isoTool() throws -> String {
        for candidate in ["/usr/bin/xorriso", "/usr/bin/genisoimage"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw ProvisionError("building a seed ISO needs xorriso or genisoimage (apt install xorriso)")
    }
}

/// What ships into each VM, from `agent-dist`: the agent binary, its systemd unit, the install script and the
/// cloud-init user-data. `agent-dist/build.sh` assembles it in `agent-dist/out`.
public struct AgentBundle: Sendable {
    public let directory: String
    public static let fileNames = ["ionlab-agent", "ionlab-agent.service", "install-agent.sh", "user-data"]

    public init(directory: String) throws {
        for name in Self.fileNames where !FileManager.default.fileExists(atPath: "\(directory)/\(name)") {
            throw ProvisionError("agent bundle \(directory) lacks \(name) (build it with agent-dist/build.sh)")
        }
        self.directory = directory
    }

    /// The bundle: the configured directory, else `agent-dist/out` of the checkout the running binary was
    /// built in, else /usr/local/lib/ionlab/agent.
    public static func locate(configured: String?, executable: String = CommandLine.arguments[0]) throws -> AgentBundle {
        if let configured { return try AgentBundle(directory: configured) }
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("agent-dist/out").path
            if FileManager.default.fileExists(atPath: "\(candidate)/ionlab-agent") { return try AgentBundle(directory: candidate) }
            directory.deleteLastPathComponent()
        }
        let installed = "/usr/local/lib/ionlab/agent"
        guard FileManager.default.fileExists(atPath: "\(installed)/ionlab-agent") else {
            throw ProvisionError("no agent bundle found: run agent-dist/build.sh, or set agent_bundle in controller.yaml")
        }
        return try AgentBundle(directory: installed)
    }

    func seedFiles() throws -> [SeedFile] {
        try Self.fileNames.map { name in
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))
            return SeedFile(name: name, contents: data, executable: name == "ionlab-agent" || name.hasSuffix(".sh"))
        }
    }
}

/// A provisioning problem, in one line.
public struct ProvisionError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs a helper tool to completion and throws its stderr when it fails.
enum Command {
    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ProvisionError("\(tool) failed (status \(process.terminationStatus)): \(text.split(separator: "\n").last ?? "")")
        }
    }
}

/// A directory only its owner can enter, made atomically by mkdtemp(3) in the temporary directory.
public struct PrivateDirectory {
    public let path: String

    public init(prefix: String) throws {
        let temporary = NSTemporaryDirectory()
        var template = ((temporary.hasSuffix("/") ? temporary : temporary + "/") + prefix + "XXXXXX").utf8CString
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ProvisionError("cannot create a private temporary directory: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
