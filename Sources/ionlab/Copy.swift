import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabAgentProtocol
import IonLabConfig
import IonLabTransfer
import IonLabWire

struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files or trees to or from an agent, sha256-verified.",
        discussion: "One side is AGENT:PATH. Write a local path containing ':' as ./path.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .short, help: "Copy directories recursively.")
    var recursive = false

    @Argument(help: "The source: LOCAL or AGENT:PATH.")
    var source: String

    @Argument(help: "The destination: LOCAL or AGENT:PATH.")
    var destination: String

    /// `agent1:/tmp/x` → ("agent1", "/tmp/x"); a local path → nil.
    static func remote(_ operand: String) -> (agent: String, path: String)? {
        guard let colon = operand.firstIndex(of: ":"), !operand[..<colon].contains("/") else { return nil }
        let agent = String(operand[..<colon])
        guard (try? AgentName.validate(agent)) != nil else { return nil }
        let path = String(operand[operand.index(after: colon)...])
        return (agent, path.isEmpty ? "." : path)
    }

    func validate() throws {
        switch (Self.remote(source), Self.remote(destination)) {
        case (nil, nil): throw ValidationError("one side must be AGENT:PATH")
        case (.some, .some): throw ValidationError("copying between two agents is not supported; copy through a local path")
        default: break
        }
    }

    func run() async throws {
        try await reportingErrors {
            let started = ContinuousClock.now
            let summary: TransferSummary
            let target: String
            if let remote = Self.remote(destination) {
                summary = try await upload(to: remote)
                target = "\(remote.agent):\(summary.path)"
            } else {
                summary = try await download(from: Self.remote(source)!)
                target = summary.path
            }
            let seconds = started.duration(to: .now).seconds
            let rate = seconds > 0 ? Double(summary.bytes) / seconds / 1_048_576 : 0
            Terminal.error("copied \(summary.files) file(s), \(Table.bytes(summary.bytes)) to \(target) in "
                       + String(format: "%.2fs (%.0f MiB/s), sha256 verified", seconds, rate))
        }
    }

    private func upload(to remote: (agent: String, path: String)) async throws -> TransferSummary {
        let sender = TreeSender(source: source, recursive: recursive)
        let (name, isDirectory) = try sender.validate()
        let request = PutRequest(destination: remote.path, sourceName: name, sourceIsDirectory: isDirectory)
        return try await AdminClient.with(paths: global.paths) { client in
            let upload: (stream: AdminStream, path: String)
            do {
                upload = try await client.upload(request, to: remote.agent)
            } catch let failure as Failure {
                throw ControllerError("\(remote.agent):\(remote.path): \(Format.escaped(failure.message))")
            }
            return try await sender.send(on: upload.stream)
        }
    }

    private func download(from remote: (agent: String, path: String)) async throws -> TransferSummary {
        let destination = self.destination
        let recursive = self.recursive
        return try await AdminClient.with(paths: global.paths) { client in
            let (stream, root): (AdminStream, TreeEntry)
            do {
                (stream, root) = try await client.download(GetRequest(source: remote.path, recursive: recursive), from: remote.agent)
            } catch let failure as Failure {
                throw ControllerError("\(remote.agent):\(remote.path): \(Format.escaped(failure.message))")
            }
            if root.kind == .directory, !recursive {
                stream.close()
                throw ControllerError("\(remote.agent):\(remote.path): the agent sent a directory, and -r was not given")
            }
            let receiver = try TreeReceiver(destination: destination, sourceName: Self.baseName(remote.path),
                                            sourceIsDirectory: root.kind == .directory)
            return try await receiver.receive(from: stream, first: .entry(root))
        }
    }

    static func baseName(_ path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }
}
