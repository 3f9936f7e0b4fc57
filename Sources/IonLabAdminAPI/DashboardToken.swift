import Foundation
import IonLabConfig

/// The secret every HTTP request must carry (`Authorization: Bearer TOKEN`): 32 random bytes as hex, kept in
/// the state directory (0600) beside the CA, made on first use. Never in a URL, so never in a log.
public struct DashboardToken: Sendable {
    public let value: String

    public init(value: String) { self.value = value }

    /// The state directory's token, made (0600) if there is none. Made by a link from a complete temporary
    /// file, which fails if the token exists: when the controller and `ionlab dashboard token` both make one
    /// at once, the first wins and the other reads it, so both hold the same.
    public static func loadOrCreate(_ paths: StatePaths) throws -> DashboardToken {
        let path = paths.dashboardToken
        if let existing = try load(path) { return existing }
        var generator = SystemRandomNumberGenerator()
        let token = DashboardToken(value: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }.hexString)
        let temporary = "\(path).tmp-\(getpid())"
        defer { unlink(temporary) }
        guard FileManager.default.createFile(atPath: temporary, contents: Data((token.value + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ControllerError("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        if link(temporary, path) == 0 { return token }
        guard errno == EEXIST, let winner = try load(path) else {
            throw ControllerError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return winner
    }

    /// The token in `path`, nil if there is no file.
    private static func load(_ path: String) throws -> DashboardToken? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value.count == 64, value.allSatisfy(\.isHexDigit) else {
            throw ControllerError("\(path): not a dashboard token (64 hex digits); remove it to make a new one")
        }
        return DashboardToken(value: value)
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    public func matches(_ presented: Substring) -> Bool {
        let expected = Array(value.utf8), given = Array(presented.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
