import Crypto
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
import NIOCore

/// Streams a file or a directory tree: an `entry` per item, a file's bytes as data, `fileEnd` with its
/// sha256, and `treeEnd`. The receiver answers `transferDone` or `failure` at any time; a failure stops
/// the sending at once.
public struct TreeSender: Sendable {
    public let source: String
    public let recursive: Bool
    /// Paths below the source left out: `target/` (a directory of that name at any depth), `*.o` (names),
    /// `docs/build` (a path relative to the source). Matched with fnmatch(3).
    public let exclude: [String]

    public init(source: String, recursive: Bool, exclude: [String] = []) {
        self.source = source
        self.recursive = recursive
        self.exclude = exclude
    }

    /// Whether an entry below the source (by its path relative to the source) is left out.
    public func isExcluded(_ relative: String, isDirectory: Bool) -> Bool {
        let name = SafePath.baseName(of: relative)
        return exclude.contains { pattern in
            if pattern.hasSuffix("/") {
                return isDirectory && fnmatch(String(pattern.dropLast()), name, 0) == 0
            }
            let target = pattern.contains("/") ? relative : name
            return fnmatch(pattern, target, 0) == 0
        }
    }

    /// Checks that the source can be sent before any stream is opened.
    public func validate() throws -> (name: String, isDirectory: Bool) {
        guard let info = FileInfo.of(source) else { throw TransferError.posix("read", source) }
        switch info.kind {
        case .directory:
            guard recursive else { throw TransferError("\(source) is a directory (use -r)") }
            return (SafePath.baseName(of: source), true)
        case .file, .symlink:
            return (SafePath.baseName(of: source), false)
        case .other:
            throw TransferError("\(source) is not a regular file or directory")
        }
    }

    /// Sends the tree and returns the receiver's summary.
    public func send<Message: AgentStreamCarrier>(on stream: WireStream<Message>) async throws -> TransferSummary {
        try await withThrowingTaskGroup(of: TransferSummary?.self) { group in
            group.addTask {
                try await self.sendTree(on: stream)
                return nil
            }
            group.addTask {
                switch try await stream.nextCarried() {
                case .transferDone(let summary): return summary
                case .failure(let failure):
                    stream.abort(failure)
                    throw failure
                case let other: throw WireError.unexpected("\(other.name) in reply to a transfer")
                }
            }
            var summary: TransferSummary?
            while let result = try await group.next() {
                if let result { summary = result }
            }
            return summary!
        }
    }

    private func sendTree<Message: AgentStreamCarrier>(on stream: WireStream<Message>) async throws {
        var summary = TransferSummary(path: source)
        try await sendEntry(path: source, relative: "", on: stream, summary: &summary)
        try await stream.send(carrying: .treeEnd(summary))
    }

    private func sendEntry<Message: AgentStreamCarrier>(path: String, relative: String, on stream: WireStream<Message>, summary: inout TransferSummary) async throws {
        guard let info = FileInfo.of(path) else { throw TransferError.posix("read", path) }
        switch info.kind {
        case .file:
            try await stream.send(carrying: .entry(TreeEntry(path: relative, kind: .file, mode: info.mode, size: info.size)))
            let digest = try await sendContents(of: path, on: stream)
            try await stream.send(carrying: .fileEnd(sha256: digest))
            summary.files += 1
            summary.bytes += info.size
        case .directory:
            try await stream.send(carrying: .entry(TreeEntry(path: relative, kind: .directory, mode: info.mode)))
            summary.directories += 1
            let children: [String]
            do {
                children = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            } catch {
                throw TransferError.posix("list", path, EACCES)
            }
            for child in children {
                let childPath = SafePath.join(path, child), childRelative = SafePath.join(relative, child)
                if !exclude.isEmpty, isExcluded(childRelative, isDirectory: FileInfo.of(childPath)?.kind == .directory) { continue }
                try await sendEntry(path: childPath, relative: childRelative, on: stream, summary: &summary)
            }
        case .symlink:
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            try await stream.send(carrying: .entry(TreeEntry(path: relative, kind: .symlink, mode: info.mode, linkTarget: target)))
        case .other:
            break  // sockets, fifos and devices are not copied
        }
    }

    private func sendContents<Message: AgentStreamCarrier>(of path: String, on stream: WireStream<Message>) async throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TransferError.posix("open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = ByteBufferAllocator().buffer(capacity: Frame.maxDataChunk)
        while true {
            try Task.checkCancellation()
            buffer.clear()
            let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Frame.maxDataChunk) { pointer in
                let result = read(fd, pointer.baseAddress, Frame.maxDataChunk)
                return result < 0 ? 0 : result
            }
            if count == 0 { break }
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            try await stream.send(data: buffer, on: .content)
        }
        return hasher.finalize().hexString
    }
}
