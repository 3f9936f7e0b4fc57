import Crypto
import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabPKI

/// Stands in for a secret wherever a spec is stored or compared: an HMAC-SHA256 under a key of this
/// controller (`STATE/secret.key`, 0600). Equal secrets give equal digests, so a changed password still
/// makes its step run again, yet the store never holds the password or a plain hash one could guess at.
struct SecretDigest: Sendable {
    private let key: SymmetricKey

    init(key: SymmetricKey) { self.key = key }

    /// The controller's key, made on first use.
    static func load(paths: StatePaths) throws -> SecretDigest {
        if let data = FileManager.default.contents(atPath: paths.secretKey), data.count == 32 {
            return SecretDigest(key: SymmetricKey(data: data))
        }
        let key = SymmetricKey(size: .bits256)
        let hex = key.withUnsafeBytes { Data($0) }
        let fd = open(paths.secretKey, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ControllerError("cannot create \(paths.secretKey): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard hex.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == 32, fsync(fd) == 0 else {
            throw ControllerError("cannot write \(paths.secretKey)")
        }
        return SecretDigest(key: key)
    }

    func callAsFunction(_ secret: String) -> String {
        "hmac-sha256:" + HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: key).hexString
    }
}
