import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabConfig
import IonLabPKI
import X509

/// The agent's state directory: its key and certificate, the controller's CA, and unreported job results.
struct AgentState {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw PKIError("cannot create the state directory \(directory): \(FileProblem.reason(error))")
        }
    }

    var jobsDirectory: String { "\(directory)/jobs" }

    /// Certificate and key in one file, replaced atomically.
    var identityPath: String { "\(directory)/identity.pem" }
    /// The key enrollment uses until it succeeds.
    var enrollmentKeyPath: String { "\(directory)/enrollment.key" }

    /// The enrolled identity, or nil before enrollment. Reads the two files of older agents too.
    func identity() throws -> Identity? {
        if FileManager.default.fileExists(atPath: identityPath) { return try Identity.loadBundle(path: identityPath) }
        guard Identity.exists(directory: directory, name: "agent") else { return nil }
        return try Identity.load(directory: directory, name: "agent")
    }

    /// Saves a new identity in one atomic step, then forgets what it replaces.
    func save(_ identity: Identity, caPEM: String?) throws {
        if let caPEM { try PEMFile.write(caPEM, path: "\(directory)/ca.pem", mode: 0o644) }
        try identity.saveBundle(path: identityPath)
        for old in ["agent.pem", "agent.key", "enrollment.key", "recovery.key"] { unlink("\(directory)/\(old)") }
    }

    /// The key to enroll with: made once and kept (0600) until enrollment succeeds, so that a retry after a
    /// lost reply presents the same key, which the controller answers with the same certificate.
    func enrollmentKey() throws -> P256.Signing.PrivateKey { try pendingKey(path: enrollmentKeyPath) }

    /// The key to recover an expired certificate with, kept likewise: the controller answers the same key
    /// with the same certificate, and refuses any other.
    func recoveryKey() throws -> P256.Signing.PrivateKey { try pendingKey(path: "\(directory)/recovery.key") }

    private func pendingKey(path: String) throws -> P256.Signing.PrivateKey {
        if FileManager.default.fileExists(atPath: path) { return try PEMFile.readPrivateKey(path: path) }
        let key = P256.Signing.PrivateKey()
        try PEMFile.write(key.pemRepresentation, path: path, mode: 0o600)
        return key
    }
}

/// Jittered exponential backoff: the n-th wait is uniform in [c/2, c], where c = min(max, initial·2ⁿ).
struct Backoff {
    let initial: Double
    let maximum: Double
    private var attempt = 0

    init(initial: Double, maximum: Double) {
        self.initial = initial
        self.maximum = maximum
    }

    mutating func next() -> Double {
        let ceiling = min(maximum, initial * pow(2, Double(attempt)))
        attempt = min(attempt + 1, 30)
        return Double.random(in: (ceiling / 2)...ceiling)
    }

    mutating func reset() { attempt = 0 }
}
