import Crypto
import Foundation
import IonLabWire
import NIOCore

/// Receives what ``TreeSender`` streams. Each file is written under a temporary name in its directory,
/// its sha256 checked, its mode set, and then renamed into place; directory modes are applied last.
public struct TreeReceiver {
    /// Where the tree's root lands.
    public let root: String
    public let expectsDirectory: Bool

    /// Resolves the destination like `cp`: into an existing directory under the source's name, otherwise
    /// at the destination itself, whose parent directory must exist.
    public init(destination: String, sourceName: String, sourceIsDirectory: Bool) throws {
        if let info = FileInfo.of(destination), info.kind == .directory || (info.kind == .symlink && Self.isDirectory(destination)) {
            root = SafePath.join(destination, sourceName)
        } else {
            let parent = SafePath.parent(of: destination)
            guard Self.isDirectory(parent) else {
                throw TransferError("parent directory \(parent) does not exist")
            }
            root = destination
        }
        if let existing = FileInfo.of(root), sourceIsDirectory != (existing.kind == .directory) {
            throw TransferError(sourceIsDirectory ? "\(root) exists and is not a directory" : "\(root) is a directory")
        }
        expectsDirectory = sourceIsDirectory
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Receives the whole tree and answers the sender with `transferDone` or `failure`. `first` is the
    /// tree's first message if the caller already read it.
    public func receive(from stream: WireStream, first: Message? = nil) async throws -> TransferSummary {
        do {
            let summary = try await receiveTree(from: stream, first: first)
            try await stream.send(.transferDone(summary))
            return summary
        } catch let error as TransferError {
            try? await stream.send(.failure(Failure(error.message)))
            throw error
        }
    }

    private func receiveTree(from stream: WireStream, first firstMessage: Message?) async throws -> TransferSummary {
        var summary = TransferSummary(path: root)
        var directoryModes: [(String, UInt32)] = []
        var symlinks: [String] = []
        var first = true
        var peeked = firstMessage
        while true {
            let message: Message
            if let next = peeked {
                message = next
                peeked = nil
            } else {
                message = try await stream.nextMessage()
            }
            switch message {
            case .entry(let entry):
                try SafePath.validate(entry.path)
                if first {
                    guard entry.path.isEmpty, (entry.kind == .directory) == expectsDirectory else {
                        throw TransferError("transfer does not start with its announced root")
                    }
                    first = false
                } else if entry.path.isEmpty {
                    throw TransferError("transfer repeats its root")
                }
                if symlinks.contains(where: { entry.path.hasPrefix($0 + "/") }) {
                    throw TransferError("unsafe path '\(entry.path)' in transfer: it passes through a symlink")
                }
                let path = SafePath.join(root, entry.path)
                switch entry.kind {
                case .directory:
                    if mkdir(path, 0o700) != 0, errno != EEXIST || !Self.isDirectory(path) { throw TransferError.posix("create directory", path) }
                    directoryModes.append((path, entry.mode))
                    summary.directories += 1
                case .file:
                    try await receiveFile(entry, at: path, from: stream)
                    summary.files += 1
                    summary.bytes += entry.size
                case .symlink:
                    unlink(path)
                    guard symlink(entry.linkTarget ?? "", path) == 0 else { throw TransferError.posix("create symlink", path) }
                    symlinks.append(entry.path)
                }
            case .treeEnd:
                for (path, mode) in directoryModes.reversed() { chmod(path, mode_t(mode)) }
                return summary
            case .failure(let failure):
                throw TransferError("sender failed: \(failure.message)")
            default:
                throw WireError.unexpected("\(message.name) in a transfer")
            }
        }
    }

    private func receiveFile(_ entry: TreeEntry, at path: String, from stream: WireStream) async throws {
        let directory = SafePath.parent(of: path)
        let temporary = SafePath.join(directory, ".\(SafePath.baseName(of: path)).ionlab-\(UInt32.random(in: 0 ... .max))")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TransferError.posix("create", temporary) }
        var keep = false
        defer {
            close(fd)
            if !keep { unlink(temporary) }
        }
        var hasher = SHA256()
        var received: UInt64 = 0
        while true {
            switch try await stream.next() {
            case .data(.content, let bytes):
                try bytes.withUnsafeReadableBytes { buffer in
                    hasher.update(bufferPointer: buffer)
                    var offset = 0
                    while offset < buffer.count {
                        let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                        guard written > 0 else { throw TransferError.posix("write", path) }
                        offset += written
                    }
                }
                received += UInt64(bytes.readableBytes)
            case .message(.fileEnd(let expected)):
                let actual = Array(hasher.finalize()).hex
                guard actual == expected, received == entry.size else {
                    throw TransferError("\(path): checksum mismatch (sent \(expected.prefix(12))…, \(entry.size) bytes; received \(actual.prefix(12))…, \(received) bytes)")
                }
                guard fchmod(fd, mode_t(entry.mode)) == 0 else { throw TransferError.posix("set the mode of", path) }
                guard rename(temporary, path) == 0 else { throw TransferError.posix("rename into", path) }
                keep = true
                return
            case .message(.failure(let failure)):
                throw TransferError("sender failed: \(failure.message)")
            case let other:
                throw WireError.unexpected("\(other) while receiving \(entry.path)")
            }
        }
    }
}
