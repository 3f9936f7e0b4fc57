import Crypto
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
@testable import IonLabController
import IonLabControllerConfig
import IonLabPKI
import Testing
import X509

/// Enrollment decides everything about an agent's trust; each decision is a value or a refusal, tested here
/// without a connection.
@Suite struct EnrollmentTests {
    struct Setup {
        let ground: Ground
        let ca: CertificateAuthority
        let enrollment: Enrollment

        init(config: ControllerConfig = ControllerConfig()) throws {
            ground = try Ground()
            ca = try CertificateAuthority.create(commonName: "test CA")
            enrollment = Enrollment(ca: ca, store: ground.store, events: ground.events, config: config)
        }

        func request(_ name: String, token: String, key: P256.Signing.PrivateKey = .init()) throws -> EnrollRequest {
            EnrollRequest(name: name, token: token, csrPEM: try AgentKeys.csr(for: key, name: name))
        }

        /// A token for `name`, spent for a new key: the agent's certificate.
        func enrolled(_ name: String) throws -> Certificate {
            let grant = try enrollment.createToken(name: name, endpoints: [], ttl: nil)
            return try Certificate(pemEncoded: try enrollment.enroll(try request(name, token: grant.token), from: "test").certificatePEM)
        }
    }

    static func refusal(_ body: () throws -> Void) -> Refusal.Code? {
        do {
            try body()
            return nil
        } catch let refusal as Refusal {
            return refusal.code
        } catch {
            return nil
        }
    }

    @Test func aTokenBuysOneCertificateForOneKey() throws {
        let setup = try Setup()
        defer { setup.ground.remove() }
        let grant = try setup.enrollment.createToken(name: "vm1", endpoints: [], ttl: nil)
        #expect(grant.caPin == setup.ca.pin.description)
        let key = P256.Signing.PrivateKey()
        let first = try setup.enrollment.enroll(try setup.request("vm1", token: grant.token, key: key), from: "test")
        let certificate = try Certificate(pemEncoded: first.certificatePEM)
        #expect(certificate.commonName == "vm1")
        // The same key asking again (its answer was lost) gets the same certificate; another key is refused.
        let again = try setup.enrollment.enroll(try setup.request("vm1", token: grant.token, key: key), from: "test")
        #expect(again.certificatePEM == first.certificatePEM)
        #expect(Self.refusal { _ = try setup.enrollment.enroll(try setup.request("vm1", token: grant.token), from: "test") } == .tokenUsed)
        #expect(try setup.ground.allEvents().filter { $0.kind == .agentEnrolled }.count == 2)
    }

    @Test func badTokensAreRefusedWithTheirReason() throws {
        let setup = try Setup()
        defer { setup.ground.remove() }
        let grant = try setup.enrollment.createToken(name: "vm1", endpoints: [], ttl: nil)
        #expect(Self.refusal { _ = try setup.enrollment.enroll(try setup.request("vm2", token: grant.token), from: "test") } == .tokenForAnotherAgent)
        #expect(Self.refusal { _ = try setup.enrollment.enroll(try setup.request("vm1", token: "ionlab-nonsense"), from: "test") } == .badToken)
        let stale = try setup.enrollment.createToken(name: "vm3", endpoints: [], ttl: 60, now: Date().addingTimeInterval(-120))
        #expect(Self.refusal { _ = try setup.enrollment.enroll(try setup.request("vm3", token: stale.token), from: "test") } == .tokenExpired)
        let bad = EnrollRequest(name: "vm1", token: grant.token, csrPEM: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
        #expect(Self.refusal { _ = try setup.enrollment.enroll(bad, from: "test") } == .protocolError)
    }

    @Test func certificatesAreJudgedByTheCAAndTheStore() throws {
        let setup = try Setup()
        defer { setup.ground.remove() }
        let certificate = try setup.enrolled("vm1")
        #expect(try setup.enrollment.judge(certificate) == .agent("vm1"))
        #expect(try setup.enrollment.isInGoodStanding(serial: certificate.serialHex))

        let stranger = try CertificateAuthority.create(commonName: "another CA")
        let foreign = try stranger.signAgentCertificate(csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"), name: "vm1", lifetime: 3600)
        guard case .refused(.untrustedCertificate, _, nil) = try setup.enrollment.judge(foreign) else {
            Issue.record("a certificate of another CA was not refused as untrusted")
            return
        }
        let unknown = try setup.ca.signAgentCertificate(csrPEM: try AgentKeys.csr(for: .init(), name: "vm9"), name: "vm9", lifetime: 3600)
        guard case .refused(.unknownAgent, _, nil) = try setup.enrollment.judge(unknown) else {
            Issue.record("a certificate the store does not know was not refused")
            return
        }
        _ = try setup.ground.store.revoke(agent: "vm1")
        guard case .refused(.revoked, _, "vm1") = try setup.enrollment.judge(certificate) else {
            Issue.record("a revoked agent's certificate was not refused")
            return
        }
        #expect(try !setup.enrollment.isInGoodStanding(serial: certificate.serialHex))
    }

    @Test func anExpiredCertificateMayBeRecoveredWithinTheWindowOnly() throws {
        let setup = try Setup(config: ControllerConfig(agentRecoverySeconds: 86_400))
        defer { setup.ground.remove() }
        let certificate = try setup.enrolled("vm1")
        let expired = certificate.notValidAfter
        #expect(try setup.enrollment.judge(certificate, now: expired.addingTimeInterval(3600)) == .recoverable("vm1"))
        guard case .refused(.expiredCertificate, _, "vm1") = try setup.enrollment.judge(certificate, now: expired.addingTimeInterval(2 * 86_400)) else {
            Issue.record("a certificate expired beyond the window was not refused")
            return
        }
        let key = P256.Signing.PrivateKey()
        let pem = try setup.enrollment.recover(agent: "vm1", presented: certificate, csrPEM: try AgentKeys.csr(for: key, name: "vm1"), remote: "test")
        let renewed = try Certificate(pemEncoded: pem)
        #expect(renewed.serialHex != certificate.serialHex && renewed.commonName == "vm1")
        #expect(try setup.enrollment.judge(renewed) == .agent("vm1"))
        // The same new key repeating the recovery gets the same certificate; the old one cannot be traded twice.
        #expect(try setup.enrollment.recover(agent: "vm1", presented: certificate, csrPEM: try AgentKeys.csr(for: key, name: "vm1"), remote: "test") == pem)
        #expect(Self.refusal {
            _ = try setup.enrollment.recover(agent: "vm1", presented: certificate, csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"), remote: "test")
        } != nil)
    }

    @Test func renewalNeedsAnAgentInGoodStanding() throws {
        let setup = try Setup()
        defer { setup.ground.remove() }
        let certificate = try setup.enrolled("vm1")
        let renewed = try setup.enrollment.renew(agent: "vm1", presented: certificate.serialHex, csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"),
                                                 remote: "test")
        #expect(try setup.enrollment.judge(renewed) == .agent("vm1"))
        _ = try setup.ground.store.revoke(agent: "vm1")
        #expect(Self.refusal {
            _ = try setup.enrollment.renew(agent: "vm1", presented: renewed.serialHex, csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"), remote: "test")
        } == .revoked)
    }

    /// After `vm snapshot revert`, the agent presents the certificate on the snapshot's disk, which may be
    /// older than the one the controller last issued (docs/security.md, "Snapshots and certificates").
    @Test func anAgentRevertedToASnapshotComesBackWithTheOlderCertificateOnItsDisk() throws {
        let setup = try Setup(config: ControllerConfig(agentRecoverySeconds: 86_400))
        defer { setup.ground.remove() }
        let onTheSnapshot = try setup.enrolled("vm1")
        // After the snapshot, the live agent renewed: a renewal does not revoke what it replaces.
        let renewed = try setup.enrollment.renew(agent: "vm1", presented: onTheSnapshot.serialHex,
                                                 csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"), remote: "test")
        #expect(try setup.enrollment.judge(renewed) == .agent("vm1"))
        // Reverted while the older certificate is valid: accepted as the same agent.
        #expect(try setup.enrollment.judge(onTheSnapshot) == .agent("vm1"))
        // Reverted after it expired (within the window): recovered as after any outage, with a new key.
        let later = onTheSnapshot.notValidAfter.addingTimeInterval(3600)
        #expect(try setup.enrollment.judge(onTheSnapshot, now: later) == .recoverable("vm1"))
        let recoveryKey = P256.Signing.PrivateKey()
        let recovered = try setup.enrollment.recover(agent: "vm1", presented: onTheSnapshot, csrPEM: try AgentKeys.csr(for: recoveryKey, name: "vm1"),
                                                     remote: "test")
        #expect(try setup.enrollment.judge(try Certificate(pemEncoded: recovered)) == .agent("vm1"))
        // Reverted once more to the same snapshot: its disk holds neither the recovery key nor the certificate
        // recovered for it, and the expired certificate was traded in already. It is refused as a copy of the
        // VM would be; the agent stops and says so (the VM must be provisioned again, or reverted to a
        // snapshot taken after the recovery).
        #expect(Self.refusal {
            _ = try setup.enrollment.recover(agent: "vm1", presented: onTheSnapshot, csrPEM: try AgentKeys.csr(for: .init(), name: "vm1"), remote: "test")
        } == .revoked)
        // `vm destroy` revokes the agent: no certificate of it is accepted after, from any snapshot.
        _ = try setup.ground.store.revoke(agent: "vm1")
        guard case .refused(.revoked, _, _) = try setup.enrollment.judge(onTheSnapshot) else {
            Issue.record("a snapshot's certificate outlived the agent's revocation")
            return
        }
    }
}
