import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabControllerConfig
import IonLabPKI
import X509

/// Owns an agent's trust from its token to its last certificate: tokens are minted here, spent here for a
/// first certificate, certificates are judged here when an agent connects, and renewed (or recovered after
/// they expired while the agent was away) here. Each decision is a value or a ``Refusal``; the listener only
/// carries them over the wire.
struct Enrollment: Sendable {
    let ca: CertificateAuthority
    let store: Store
    let events: EventLog
    let config: ControllerConfig

    /// What a presented certificate earns.
    enum Standing: Equatable {
        case agent(String)
        /// Expired while the agent was away, within the recovery window: it may renew, nothing else.
        case recoverable(String)
        case refused(Refusal.Code, String, agent: String?)
    }

    // MARK: Tokens

    /// Mints a one-time token for `name`, and says how to reach and trust this controller.
    func createToken(name: String, endpoints: [Endpoint], ttl: Double?, now: Date = Date()) throws -> TokenGrant {
        try AgentName.validate(name)
        let token = EnrollmentToken.generate()
        let expires = now.addingTimeInterval(ttl ?? config.tokenTtlSeconds)
        try store.addToken(hash: EnrollmentToken.hash(token), agent: name, expires: expires)
        events.emit(.tokenCreated, agent: name, "enrollment token created, valid until \(Format.time(expires))")
        let dial = endpoints.isEmpty ? config.agentEndpoints : endpoints
        return TokenGrant(name: name, token: token, expiresAt: expires, endpoints: dial.map(\.description), caPin: ca.pin.description)
    }

    // MARK: First certificate

    /// Spends the token for the CSR's key and returns the certificate and the CA; for the same key, while the
    /// token lives, the certificate issued when it was spent (an agent that lost the answer asks again).
    func enroll(_ request: EnrollRequest, from remote: String) throws -> EnrollResponse {
        let certificatePEM: String
        do {
            let csr = try CertificateAuthority.readCSR(request.csrPEM)
            certificatePEM = try store.spendToken(hash: EnrollmentToken.hash(request.token), agent: request.name,
                                                  keySHA256: SPKIPin.of(csr.publicKey).hex) {
                let certificate = try ca.signAgentCertificate(csr: csr, name: request.name, lifetime: config.agentCertificateSeconds)
                return (certificate.serialHex, certificate.notValidAfter, try certificate.serializeAsPEM().pemString)
            }
        } catch let problem as TokenProblem {
            switch problem {
            case .unknown: throw Refusal(.badToken, "the enrollment token is not valid for this controller")
            case .expired(let time): throw Refusal(.tokenExpired, "the enrollment token for \(request.name) expired at \(Format.time(time))")
            case .used(let time): throw Refusal(.tokenUsed, "the enrollment token for \(request.name) was already used at \(Format.time(time)) by another key")
            case .otherAgent(let owner): throw Refusal(.tokenForAnotherAgent, "the enrollment token belongs to agent '\(owner)', not '\(request.name)'")
            }
        } catch let error as PKIError {
            throw Refusal(.protocolError, error.message)
        }
        let serial = (try? Certificate(pemEncoded: certificatePEM))?.serialHex ?? "?"
        events.emit(.agentEnrolled, agent: request.name, "enrolled from \(remote); certificate \(serial)",
                    detail: .certificate(CertificateDetail(serial: serial, remote: remote, recovered: false)))
        return EnrollResponse(certificatePEM: certificatePEM, caPEM: try ca.certificate.serializeAsPEM().pemString)
    }

    // MARK: Authentication

    /// Judges a certificate against the CA and the store: the agent it belongs to, or why not.
    func judge(_ certificate: Certificate, now: Date = Date()) throws -> Standing {
        do {
            try ca.verifyAgentIssue(certificate)
        } catch let error as PKIError {
            return .refused(.untrustedCertificate, error.message, agent: nil)
        }
        let serial = certificate.serialHex
        guard let standing = try store.standing(serial: serial) else {
            return .refused(.unknownAgent, "certificate \(serial) (\(Format.escaped(certificate.commonName ?? "no name"))) is not known to this controller",
                            agent: nil)
        }
        let name = standing.agent
        if let revoked = standing.revokedAt {
            return .refused(.revoked, "certificate \(serial) of agent \(name) was revoked at \(Format.time(revoked))", agent: name)
        }
        guard standing.agentState == .enrolled else {
            return .refused(.revoked, "agent \(name) is \(standing.agentState?.rawValue ?? "unknown"), not enrolled", agent: name)
        }
        guard certificate.commonName == name else {
            return .refused(.unknownAgent, "certificate \(serial) names another agent than \(name)", agent: name)
        }
        guard now >= certificate.notValidBefore else {
            return .refused(.untrustedCertificate, "certificate \(serial) is not valid before \(Format.time(certificate.notValidBefore))", agent: name)
        }
        if now > certificate.notValidAfter {
            guard now.timeIntervalSince(certificate.notValidAfter) <= config.agentRecoverySeconds else {
                return .refused(.expiredCertificate, "certificate \(serial) of agent \(name) expired at \(Format.time(certificate.notValidAfter)), "
                                + "beyond the recovery window; enroll again with a new token", agent: name)
            }
            return .recoverable(name)
        }
        return .agent(name)
    }

    /// Whether the certificate `serial` still belongs to an enrolled, unrevoked agent (asked again once a
    /// session is registered, so that a revocation racing the connection is never missed).
    func isInGoodStanding(serial: String) throws -> Bool {
        try store.standing(serial: serial).map { $0.revokedAt == nil && $0.agentState == .enrolled } == true
    }

    // MARK: Renewal

    /// Signs a renewal for a connected agent, recorded in the same transaction that checks the agent is still
    /// in good standing.
    func renew(agent: String, presented serial: String, csrPEM: String, remote: String) throws -> Certificate {
        var issued: Certificate?
        try store.renew(presentedSerial: serial, agent: agent) {
            let certificate = try ca.signAgentCertificate(csrPEM: csrPEM, name: agent, lifetime: config.agentCertificateSeconds)
            issued = certificate
            return (certificate.serialHex, certificate.notValidAfter)
        }
        let certificate = issued!
        events.emit(.certificateRenewed, agent: agent,
                    "certificate \(certificate.serialHex) issued, valid until \(Format.time(certificate.notValidAfter))",
                    detail: .certificate(CertificateDetail(serial: certificate.serialHex, remote: remote, recovered: false)))
        return certificate
    }

    /// Trades a certificate that expired while its agent was away (its key proven in the TLS handshake) for
    /// a new one; for the same new key, the one already issued. Returns the certificate's PEM.
    func recover(agent: String, presented: Certificate, csrPEM: String, remote: String) throws -> String {
        let pem: String
        do {
            let csr = try CertificateAuthority.readCSR(csrPEM)
            pem = try store.recover(presentedSerial: presented.serialHex, agent: agent, keySHA256: SPKIPin.of(csr.publicKey).hex) {
                let certificate = try ca.signAgentCertificate(csr: csr, name: agent, lifetime: config.agentCertificateSeconds)
                return (certificate.serialHex, certificate.notValidAfter, try certificate.serializeAsPEM().pemString)
            }
        } catch let error as PKIError {
            throw Refusal(.protocolError, error.message)
        }
        let serial = (try? Certificate(pemEncoded: pem))?.serialHex ?? "?"
        events.emit(.certificateRenewed, agent: agent,
                    "certificate \(presented.serialHex) had expired; \(serial) issued to the same agent from \(remote)",
                    detail: .certificate(CertificateDetail(serial: serial, remote: remote, recovered: true)))
        return pem
    }
}
