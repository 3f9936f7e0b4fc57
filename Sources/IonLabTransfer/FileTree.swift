import Foundation

/// Errors of a transfer, each one line naming the path.
public struct TransferError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func posix(_ action: String, _ path: String, _ code: Int32 = errno) -> TransferError {
        TransferError("cannot \(action) \(path): \(String(cString: strerror(code)))")
    }
}

/// File-system facts the transfer needs, from lstat (symlinks are not followed).
struct FileInfo {
    enum Kind { case file, directory, symlink, other }
    var kind: Kind
    var mode: UInt32
    var size: UInt64

    static func of(_ path: String) -> FileInfo? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        let kind: Kind
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        return FileInfo(kind: kind, mode: UInt32(info.st_mode & 0o7777), size: UInt64(info.st_size))
    }
}

/// Relative paths received from a peer, checked so they cannot leave the transfer's root.
enum SafePath {
    static func validate(_ path: String) throws {
        if path.isEmpty { return }
        guard !path.hasPrefix("/"), !path.contains("\0") else { throw TransferError("unsafe path '\(path)' in transfer") }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard !component.isEmpty, component != ".", component != ".." else {
                throw TransferError("unsafe path '\(path)' in transfer")
            }
        }
    }

    static func join(_ root: String, _ relative: String) -> String {
        if relative.isEmpty { return root }
        if root.isEmpty { return relative }
        return root.hasSuffix("/") ? root + relative : root + "/" + relative
    }

    static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    static func baseName(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }
}

extension Array where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
