#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabWire

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

/// Paths as the kernel reads them: bytes, split at every `/` byte. (Swift's `Character` would not do: a `/`
/// followed by a combining mark is one Character that is not "/", yet the kernel still splits there.)
enum SafePath {
    static let slash = UInt8(ascii: "/")

    /// The components of a relative path received from a peer, each checked so that it cannot leave the
    /// transfer's root: not empty, not `.` or `..`, no NUL, at most 255 bytes. `""` is the root itself.
    static func components(_ path: String) throws -> [String] {
        if path.isEmpty { return [] }
        let bytes = Array(path.utf8)
        guard bytes.first != slash, !bytes.contains(0) else { throw TransferError("unsafe path in transfer: \(Quote.peer(path))") }
        return try bytes.split(separator: slash, omittingEmptySubsequences: false).map { component in
            guard !component.isEmpty, component.elementsEqual([UInt8(ascii: ".")]) == false,
                  component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) == false, component.count <= 255 else {
                throw TransferError("unsafe path in transfer: \(Quote.peer(path))")
            }
            return String(decoding: component, as: UTF8.self)
        }
    }

    static func validate(_ path: String) throws { _ = try components(path) }

    static func join(_ root: String, _ relative: String) -> String {
        if relative.isEmpty { return root }
        if root.isEmpty { return relative }
        return root.utf8.last == slash ? root + relative : root + "/" + relative
    }

    /// Everything before the last `/` byte (trailing slashes ignored): "." without one, "/" for the root.
    static func parent(of path: String) -> String {
        let bytes = trimmed(path)
        guard let index = bytes.lastIndex(of: slash) else { return "." }
        return index == 0 ? "/" : String(decoding: bytes[..<index], as: UTF8.self)
    }

    /// Everything after the last `/` byte (trailing slashes ignored).
    static func baseName(of path: String) -> String {
        let bytes = trimmed(path)
        guard let index = bytes.lastIndex(of: slash) else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes[(index + 1)...], as: UTF8.self)
    }

    /// Whether a single name holds no `/` byte and no NUL, and is not `.` or `..`.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.utf8.contains(slash) && !name.utf8.contains(0) && name != "." && name != ".." && name.utf8.count <= 255
    }

    private static func trimmed(_ path: String) -> ArraySlice<UInt8> {
        var bytes = Array(path.utf8)[...]
        while bytes.count > 1, bytes.last == slash { bytes = bytes.dropLast() }
        return bytes
    }
}

/// A peer's text inside one of our messages: quoted, cut at 300 characters, with control characters (line
/// breaks included) shown as escapes, so a message stays one line whatever the peer sent.
enum Quote {
    static func peer(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let shown = SafeText.escaped(String(String.UnicodeScalarView(scalars.prefix(300))))
        return "'" + shown + (scalars.count > 300 ? "…'" : "'")
    }
}
