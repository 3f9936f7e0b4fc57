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

/// Writes a tree that a peer streams, one item at a time, treating the peer as hostile: synchronous and free
/// of any stream, so it can be tested and fuzzed on its own (``TreeReceiver`` feeds it from a stream).
///
/// - Nothing is reached by path. The root's parent is opened once; everything below is created and opened
///   relative to directory descriptors, one component at a time with `O_NOFOLLOW`, so a link in the tree
///   (sent by the peer or already on disk) is never followed, whatever order the entries come in.
/// - A root that is not a directory takes no children.
/// - Files land under a temporary name, are checked (size as they arrive, sha256 at the end), get their mode
///   through their descriptor, and are renamed into place. Modes lose setuid, setgid and sticky bits.
/// - Only files, directories and symbolic links exist in the protocol; an existing destination that is a
///   device, FIFO or socket is refused.
public struct TreeWriter {
    /// Permission bits a transfer may set: never setuid, setgid or sticky.
    public static let modeMask: UInt32 = 0o777

    /// Where the root lands, for messages and the summary.
    public let root: String
    public let expectsDirectory: Bool
    private let parentFD: Int32
    private let rootName: String
    private var rootFD: Int32 = -1
    private var started = false
    private var summary: TransferSummary
    /// The file being received, if any.
    private var file: IncomingFile?
    /// Directories whose final mode lacks owner rwx: applied at the end, so their children could be created.
    private var pendingModes: [(path: String, mode: UInt32)] = []
    /// The directory last opened for an entry, reused for its siblings.
    private var cachedParent: (path: String, fd: Int32)?

    /// The most directories whose mode is set at the end (those without owner rwx) in one transfer.
    public static let maximumPendingModes = 100_000

    /// Opens the parent of `root`, which the caller chose (links in it are the caller's and are followed).
    public init(root: String, expectsDirectory: Bool) throws {
        self.root = root
        self.expectsDirectory = expectsDirectory
        self.summary = TransferSummary(path: root)
        rootName = SafePath.baseName(of: root)
        guard SafePath.isPlainName(rootName) else { throw TransferError("cannot write a tree at \(root)") }
        let parent = SafePath.parent(of: root)
        parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw TransferError.posix("open directory", parent) }
    }

    /// Releases descriptors and removes a partly received file. Call once, whatever happened.
    public mutating func finish() {
        file?.discard()
        file = nil
        if let cachedParent { close(cachedParent.fd) }
        cachedParent = nil
        if rootFD >= 0 { close(rootFD) }
        rootFD = -1
        close(parentFD)
    }

    /// What one item led to.
    public enum Progress: Equatable {
        case more
        /// The tree ended and every directory has its mode.
        case done(TransferSummary)
    }

    /// Takes the next item of the tree; throws ``TransferError`` (or a ``WireError``) at the first problem.
    public mutating func handle(_ item: StreamItem<AgentStreamMessage>) throws -> Progress {
        switch item {
        case .data(.content, let bytes):
            guard file != nil else { throw TransferError("file data outside a file in transfer") }
            try file!.write(bytes)
            return .more
        case .data(let channel, _):
            throw TransferError("\(channel) data in a transfer")
        case .message(.entry(let entry)):
            guard file == nil else { throw TransferError("entry before the previous file ended in transfer") }
            try begin(entry)
            return .more
        case .message(.fileEnd(let digest)):
            guard var current = file else { throw TransferError("fileEnd outside a file in transfer") }
            file = nil
            try current.finish(expectedSHA256: digest, displayPath: Quote.peer(SafePath.join(root, current.relativePath)))
            summary.files += 1
            summary.bytes += current.expectedSize
            return .more
        case .message(.treeEnd):
            guard file == nil else { throw TransferError("the tree ended inside a file") }
            guard started else { throw TransferError("the tree ended before its root") }
            for (path, mode) in pendingModes.reversed() {
                let fd = try openDirectory(try SafePath.components(path)[...])
                defer { close(fd) }
                guard fchmod(fd, mode_t(mode)) == 0 else { throw TransferError.posix("set the mode of", Quote.peer(SafePath.join(root, path))) }
            }
            return .done(summary)
        case .message(.failure(let failure)):
            throw TransferError("sender failed: \(failure.message)")
        case .message(let other):
            throw WireError.unexpected("\(other.name) in a transfer")
        }
    }

    // MARK: Entries

    private mutating func begin(_ entry: TreeEntry) throws {
        let components = try SafePath.components(entry.path)
        if !started {
            guard entry.path.isEmpty, (entry.kind == .directory) == expectsDirectory else {
                throw TransferError("transfer does not start with its announced root")
            }
            started = true
            try create(entry, in: parentFD, named: rootName, relative: "")
            return
        }
        guard !entry.path.isEmpty else { throw TransferError("transfer repeats its root") }
        guard rootFD >= 0 else { throw TransferError("\(Quote.peer(entry.path)) in transfer: the root is not a directory, so it has no children") }
        let directory = try parentDirectory(components.dropLast())
        try create(entry, in: directory, named: components.last!, relative: entry.path)
    }

    private mutating func create(_ entry: TreeEntry, in directory: Int32, named name: String, relative: String) throws {
        // Every name given to an *at() call is one component: the kernel must never see a `/` in it.
        guard SafePath.isPlainName(name) else { throw TransferError("unsafe name in transfer: \(Quote.peer(name))") }
        let display = Quote.peer(SafePath.join(root, relative))
        switch entry.kind {
        case .directory:
            if mkdirat(directory, name, 0o700) != 0, errno != EEXIST { throw TransferError.posix("create directory", display) }
            let fd = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw Self.notADirectory(display, errno, isLink: Self.isLink(name, in: directory)) }
            let mode = entry.mode & Self.modeMask
            if mode & 0o700 == 0o700 {
                guard fchmod(fd, mode_t(mode)) == 0 else {
                    close(fd)
                    throw TransferError.posix("set the mode of", display)
                }
            } else {
                guard pendingModes.count < Self.maximumPendingModes else {
                    close(fd)
                    throw TransferError("transfer has more than \(Self.maximumPendingModes) directories without owner access")
                }
                pendingModes.append((relative, mode))
            }
            if relative.isEmpty { rootFD = fd } else { close(fd) }
            summary.directories += 1
        case .file:
            let temporary = Self.temporaryName(for: name)
            let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw TransferError.posix("create", display) }
            file = IncomingFile(fd: fd, directoryFD: directory, temporaryName: temporary, name: name, relativePath: relative,
                                expectedSize: entry.size, mode: entry.mode & Self.modeMask)
        case .symlink:
            guard let target = entry.linkTarget, !target.isEmpty, !target.utf8.contains(0) else {
                throw TransferError("symbolic link \(display) in transfer has no target")
            }
            let temporary = Self.temporaryName(for: name)
            guard symlinkat(target, directory, temporary) == 0 else { throw TransferError.posix("create symlink", display) }
            guard renameat(directory, temporary, directory, name) == 0 else {
                let code = errno
                unlinkat(directory, temporary, 0)
                throw TransferError.posix("create symlink", display, code)
            }
        }
    }

    /// The directory below the root made of `components`, opened one at a time without following links.
    private mutating func parentDirectory(_ components: ArraySlice<String>) throws -> Int32 {
        let key = components.joined(separator: "/")
        if let cachedParent, cachedParent.path == key { return cachedParent.fd }
        let fd = try openDirectory(components)
        if let cachedParent { close(cachedParent.fd) }
        cachedParent = (key, fd)
        return fd
    }

    /// Opens a directory below the root (no components: the root), refusing links and non-directories on
    /// the way.
    private func openDirectory(_ components: ArraySlice<String>) throws -> Int32 {
        var fd = rootFD >= 0 ? dup(rootFD) : openat(parentFD, rootName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Self.notADirectory(root, errno, isLink: Self.isLink(rootName, in: parentFD)) }
        var walked = ""
        for component in components {
            guard SafePath.isPlainName(component) else {
                close(fd)
                throw TransferError("unsafe name in transfer: \(Quote.peer(component))")
            }
            walked = SafePath.join(walked, component)
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            let link = next < 0 && Self.isLink(component, in: fd)
            close(fd)
            guard next >= 0 else { throw Self.notADirectory(Quote.peer(SafePath.join(root, walked)), code, isLink: link) }
            fd = next
        }
        return fd
    }

    static func isLink(_ name: String, in directory: Int32) -> Bool {
        var info = stat()
        return fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    static func notADirectory(_ path: String, _ code: Int32, isLink: Bool) -> TransferError {
        if isLink { return TransferError("unsafe path in transfer: \(path) is a symbolic link, which a transfer never follows") }
        switch code {
        case ENOTDIR: return TransferError("\(path) exists and is not a directory")
        case ENOENT: return TransferError("\(path) does not exist: its directory was not sent first")
        default: return TransferError.posix("open directory", path, code)
        }
    }

    /// A fresh name beside the final one (never derived from a peer's name, so never too long or odd).
    static func temporaryName(for name: String) -> String {
        ".ionlab-transfer-\(UInt64.random(in: 0 ... .max))"
    }
}

/// A file being received under a temporary name: its descriptor, running size and digest. The directory
/// descriptor belongs to the ``TreeWriter``, which keeps it open until the file ends.
private struct IncomingFile {
    let fd: Int32
    let directoryFD: Int32
    let temporaryName: String
    let name: String
    let relativePath: String
    let expectedSize: UInt64
    let mode: UInt32
    var received: UInt64 = 0
    var hasher = SHA256()

    init(fd: Int32, directoryFD: Int32, temporaryName: String, name: String, relativePath: String, expectedSize: UInt64, mode: UInt32) {
        self.fd = fd
        self.directoryFD = directoryFD
        self.temporaryName = temporaryName
        self.name = name
        self.relativePath = relativePath
        self.expectedSize = expectedSize
        self.mode = mode
    }

    /// Appends bytes, refusing any beyond the announced size as soon as they arrive.
    mutating func write(_ bytes: ByteBuffer) throws {
        received += UInt64(bytes.readableBytes)
        guard received <= expectedSize else {
            throw TransferError("\(Quote.peer(relativePath.isEmpty ? name : relativePath)): more bytes than the \(expectedSize) announced")
        }
        try bytes.withUnsafeReadableBytes { buffer in
            hasher.update(bufferPointer: buffer)
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                guard written > 0 else { throw TransferError.posix("write", name) }
                offset += written
            }
        }
    }

    /// Checks size and digest, sets the mode through the descriptor, and renames the file into place; on
    /// any failure the temporary file is gone.
    mutating func finish(expectedSHA256: String, displayPath: String) throws {
        let actual = hasher.finalize().hexString
        guard actual == expectedSHA256.lowercased(), received == expectedSize else {
            discard()
            throw TransferError("\(displayPath): checksum mismatch (sent \(expectedSHA256.prefix(12))…, \(expectedSize) bytes; received \(actual.prefix(12))…, \(received) bytes)")
        }
        guard fchmod(fd, mode_t(mode)) == 0 else {
            let code = errno
            discard()
            throw TransferError.posix("set the mode of", displayPath, code)
        }
        close(fd)
        guard renameat(directoryFD, temporaryName, directoryFD, name) == 0 else {
            let code = errno
            unlinkat(directoryFD, temporaryName, 0)
            throw TransferError.posix("rename into", displayPath, code)
        }
    }

    /// Closes and removes the temporary file.
    func discard() {
        close(fd)
        unlinkat(directoryFD, temporaryName, 0)
    }
}
