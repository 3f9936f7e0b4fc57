#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabWire

/// Receives what ``TreeSender`` streams into a destination chosen like `cp` does, and answers the sender
/// with `transferDone` or `failure`. The writing itself, which trusts nothing the sender says, is
/// ``TreeWriter``'s.
public struct TreeReceiver {
    /// Where the tree's root lands.
    public let root: String
    public let expectsDirectory: Bool

    /// Resolves the destination like `cp`: into an existing directory under the source's name, otherwise
    /// at the destination itself, whose parent directory must exist. Links in the destination the caller
    /// gave are followed (they are the caller's); nothing below it ever is.
    public init(destination: String, sourceName: String, sourceIsDirectory: Bool) throws {
        guard SafePath.isPlainName(sourceName) else { throw TransferError("unsafe source name in transfer") }
        if let info = FileInfo.of(destination), info.kind == .directory || (info.kind == .symlink && Self.isDirectory(destination)) {
            root = SafePath.join(destination, sourceName)
        } else {
            let parent = SafePath.parent(of: destination)
            guard Self.isDirectory(parent) else {
                throw TransferError("parent directory \(parent) does not exist")
            }
            root = destination
        }
        if let existing = FileInfo.of(root) {
            if existing.kind == .other { throw TransferError("\(root) is a device, FIFO or socket: a transfer never writes to one") }
            if sourceIsDirectory != (existing.kind == .directory) {
                throw TransferError(sourceIsDirectory ? "\(root) exists and is not a directory" : "\(root) is a directory")
            }
        }
        expectsDirectory = sourceIsDirectory
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// Receives the whole tree and answers the sender with `transferDone` or `failure`. `first` is the
    /// tree's first message if the caller already read it.
    public func receive<Message: AgentStreamCarrier>(from stream: WireStream<Message>, first: AgentStreamMessage? = nil) async throws -> TransferSummary {
        do {
            let summary = try await receiveTree(from: stream, first: first)
            try await stream.send(carrying: .transferDone(summary))
            return summary
        } catch let error as TransferError {
            try? await stream.send(carrying: .failure(Failure(error.message)))
            throw error
        }
    }

    private func receiveTree<Message: AgentStreamCarrier>(from stream: WireStream<Message>, first: AgentStreamMessage?) async throws -> TransferSummary {
        var writer = try TreeWriter(root: root, expectsDirectory: expectsDirectory)
        defer { writer.finish() }
        if let first, case .done(let summary) = try writer.handle(.message(first)) { return summary }
        while true {
            if case .done(let summary) = try writer.handle(try await stream.nextCarriedItem()) { return summary }
        }
    }
}
