import Crypto
import Foundation
import IonLabConfig
import IonLabPKI
import Testing
import X509

@Suite struct PKITests {
    let ca = try! CertificateAuthority.create(commonName: "test CA")

    @Test func agentCertificatesComeFromTheCSRKeyAndTheAuthenticatedName() throws {
        let (key, csr) = try AgentKeys.makeKeyAndCSR(name: "what-the-agent-claims")
        let certificate = try ca.signAgentCertificate(csrPEM: csr, name: "vm1", lifetime: 3600)
        #expect(certificate.commonName == "vm1")
        #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
        try ca.verifyClientCertificate(certificate)
        #expect(certificate.notValidAfter.timeIntervalSinceNow > 3500)
    }

    @Test func certificatesFromAnotherCAOrExpiredOnesAreRejected() throws {
        let other = try CertificateAuthority.create(commonName: "other CA")
        let (_, csr) = try AgentKeys.makeKeyAndCSR(name: "vm1")
        let foreign = try other.signAgentCertificate(csrPEM: csr, name: "vm1", lifetime: 3600)
        #expect(throws: PKIError.self) { try ca.verifyClientCertificate(foreign) }
        let mine = try ca.signAgentCertificate(csrPEM: csr, name: "vm1", lifetime: 60)
        #expect(throws: PKIError.self) { try ca.verifyClientCertificate(mine, now: Date().addingTimeInterval(120)) }
        // A server certificate is not a client certificate.
        let server = try ca.issueServerCertificate(hosts: ["127.0.0.1"])
        #expect(throws: PKIError.self) { try ca.verifyClientCertificate(server.certificate) }
    }

    @Test func tamperedCSRsAreRejected() throws {
        let (_, csr) = try AgentKeys.makeKeyAndCSR(name: "vm1")
        #expect(throws: PKIError.self) { try ca.signAgentCertificate(csrPEM: "not a csr", name: "vm1", lifetime: 60) }
        var lines = csr.split(separator: "\n").map(String.init)
        let middle = lines.count / 2
        lines[middle] = String(lines[middle].reversed())
        #expect(throws: PKIError.self) { try ca.signAgentCertificate(csrPEM: lines.joined(separator: "\n"), name: "vm1", lifetime: 60) }
    }

    @Test func thePinIsTheSHA256OfTheSubjectPublicKeyInfo() throws {
        let pin = ca.pin
        #expect(pin.description.hasPrefix("sha256:"))
        #expect(pin.hex.count == 64)
        let spki = ca.identity.privateKey.publicKey.derRepresentation
        #expect(pin.hex == SHA256.hash(data: spki).map { String(format: "%02x", $0) }.joined())
    }

    @Test func tokensAreLongRandomAndStoredAsHashes() {
        let first = EnrollmentToken.generate()
        let second = EnrollmentToken.generate()
        #expect(first != second)
        #expect(first.hasPrefix("ionlab-") && first.count == 7 + 32)  // 160 bits in base32
        #expect(EnrollmentToken.hash(first).count == 64)
        #expect(EnrollmentToken.hash(first) != first)
    }

    @Test func identitiesSurviveADiskRoundTripWithPrivateKeys() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pki-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try ca.identity.save(directory: directory, name: "ca")
        let loaded = try Identity.load(directory: directory, name: "ca")
        #expect(loaded.certificate == ca.certificate)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/ca.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try "garbage".write(toFile: "\(directory)/ca.pem", atomically: true, encoding: .utf8)
        #expect(throws: PKIError.self) { try Identity.load(directory: directory, name: "ca") }
    }

    @Test func serverChainsAreCheckedAgainstThePin() throws {
        let server = try ca.issueServerCertificate(hosts: ["127.0.0.1", "localhost"])
        let chain = try [server.certificate, ca.certificate].map {
            try NIOSSLCertificateBridge.make($0)
        }
        #expect(TLSSetup.verifyServerChain(chain, pin: ca.pin) == nil)
        let stranger = try CertificateAuthority.create(commonName: "stranger")
        #expect(TLSSetup.verifyServerChain(chain, pin: stranger.pin)?.contains("does not contain the pinned CA") == true)
        // A chain that carries the pinned CA but whose leaf another CA signed.
        let forged = try stranger.issueServerCertificate(hosts: ["127.0.0.1"])
        let mixed = try [forged.certificate, ca.certificate].map { try NIOSSLCertificateBridge.make($0) }
        #expect(TLSSetup.verifyServerChain(mixed, pin: ca.pin) == "the controller's certificate is not signed by the pinned CA")
    }

    /// Issue 9, item 2: the CA signs agents' certificates too, and a guest holding one once passed for the
    /// controller towards other agents.
    @Test func anAgentCertificateCannotPassForTheController() throws {
        let (_, csr) = try AgentKeys.makeKeyAndCSR(name: "vm1")
        let agent = try ca.signAgentCertificate(csrPEM: csr, name: "vm1", lifetime: 3600)
        let chain = try [agent, ca.certificate].map { try NIOSSLCertificateBridge.make($0) }
        #expect(TLSSetup.verifyServerChain(chain, pin: ca.pin)?.contains("is not the controller's") == true)
        #expect(!agent.isControllerCertificate)
        #expect(agent.uris == ["urn:ionlab:agent:vm1"])
        let server = try ca.issueServerCertificate(hosts: ["127.0.0.1"])
        #expect(server.certificate.isControllerCertificate)
        #expect(try server.certificate.extensions.extendedKeyUsage?.contains(.clientAuth) == false)
        // And the controller takes no server certificate for an agent's.
        #expect(throws: PKIError.self) { try ca.verifyClientCertificate(server.certificate) }
    }

    @Test func anOldServerCertificateIsReissuedForTheSameHostsWithItsRole() throws {
        let fresh = try ca.reissueServerCertificate(replacing: try ca.issueServerCertificate(hosts: ["127.0.0.1", "::1", "lab.example"]).certificate)
        #expect(fresh.certificate.isControllerCertificate)
        let names = try #require(try fresh.certificate.extensions.subjectAlternativeNames).map { "\($0)" }.joined(separator: " ")
        #expect(names.contains("lab.example"))
        #expect(names.contains("IPAddress([127, 0, 0, 1])"))
        #expect(names.components(separatedBy: "IPAddress").count == 3)
    }
}

import NIOSSL

enum NIOSSLCertificateBridge {
    static func make(_ certificate: Certificate) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: Array(certificate.serializeAsPEM().pemString.utf8), format: .pem)
    }
}
