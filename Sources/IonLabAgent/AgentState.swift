import Foundation
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
            throw PKIError("cannot create the state directory \(directory): \(error.localizedDescription)")
        }
    }

    var jobsDirectory: String { "\(directory)/jobs" }

    /// The enrolled identity, or nil before enrollment.
    func identity() throws -> Identity? {
        guard Identity.exists(directory: directory, name: "agent") else { return nil }
        return try Identity.load(directory: directory, name: "agent")
    }

    func save(_ identity: Identity, caPEM: String?) throws {
        if let caPEM { try PEMFile.write(caPEM, path: "\(directory)/ca.pem", mode: 0o644) }
        try identity.save(directory: directory, name: "agent")
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
