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
import SwiftASN1
import X509

/// The controller's certificate authority: it signs the controller's server certificate and every
/// agent's client certificate. Agents trust it through its SPKI pin.
public struct CertificateAuthority: Sendable {
    public let identity: Identity

    public init(identity: Identity) { self.identity = identity }

    public var certificate: Certificate { identity.certificate }

    /// Makes a new self-signed CA with a P-256 key.
    public static func create(commonName: String, lifetime: TimeInterval = 10 * 365 * 86_400) throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { OrganizationName("ionlab"); CommonName(commonName) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(lifetime),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        return CertificateAuthority(identity: Identity(certificate: certificate, privateKey: key))
    }

    /// The pin agents use to recognise this CA.
    public var pin: CAPin { SPKIPin.of(certificate) }

    /// Issues the controller's TLS server certificate, valid for the given host names and IP addresses, and
    /// naming the controller (``CertificateRole/controllerURI``) so that no agent certificate can pass for it.
    public func issueServerCertificate(hosts: [String], lifetime: TimeInterval = 2 * 365 * 86_400) throws -> Identity {
        let key = P256.Signing.PrivateKey()
        let names: [GeneralName] = [.uniformResourceIdentifier(CertificateRole.controllerURI)] + hosts.map { host in
            if let bytes = IPAddressBytes.parse(host) { return .ipAddress(ASN1OctetString(contentBytes: bytes[...])) }
            return .dnsName(host)
        }
        let certificate = try issue(
            publicKey: .init(key.publicKey), subject: try DistinguishedName { OrganizationName("ionlab"); CommonName("ionlab controller") },
            lifetime: lifetime, usage: .serverAuth, subjectAlternativeNames: names)
        return Identity(certificate: certificate, privateKey: key)
    }

    /// Reads a CSR and checks that its signature matches its key (the agent holds the key).
    public static func readCSR(_ pem: String) throws -> CertificateSigningRequest {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: pem)
        } catch {
            throw PKIError("the certificate signing request is not valid PEM")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw PKIError("the certificate signing request's signature does not match its key")
        }
        return csr
    }

    /// Signs an agent's CSR. The subject comes from `name`, which the caller has authenticated, never from
    /// the CSR; only the CSR's public key (proven by its signature) is used.
    public func signAgentCertificate(csrPEM: String, name: String, lifetime: TimeInterval) throws -> Certificate {
        try signAgentCertificate(csr: try Self.readCSR(csrPEM), name: name, lifetime: lifetime)
    }

    public func signAgentCertificate(csr: CertificateSigningRequest, name: String, lifetime: TimeInterval) throws -> Certificate {
        try issue(publicKey: csr.publicKey, subject: try DistinguishedName { OrganizationName("ionlab agents"); CommonName(name) },
                  lifetime: lifetime, usage: .clientAuth,
                  subjectAlternativeNames: [.uniformResourceIdentifier(CertificateRole.agentURI(name))])
    }

    private func issue(publicKey: Certificate.PublicKey, subject: DistinguishedName, lifetime: TimeInterval,
                       usage: ExtendedKeyUsage.Usage, subjectAlternativeNames: [GeneralName]) throws -> Certificate {
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            // Guests' clocks may lag the host's; accept a certificate an hour "early".
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(lifetime),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([usage])
                if !subjectAlternativeNames.isEmpty { SubjectAlternativeNames(subjectAlternativeNames) }
            },
            issuerPrivateKey: .init(identity.privateKey))
    }

    /// Checks that a certificate was issued by this CA for an agent (client authentication only, naming the
    /// agent of its common name) and is valid now.
    public func verifyClientCertificate(_ certificate: Certificate, now: Date = Date()) throws {
        try verifyAgentIssue(certificate)
        guard now >= certificate.notValidBefore else {
            throw PKIError("client certificate \(certificate.serialHex) is not valid before \(certificate.notValidBefore)")
        }
        guard now <= certificate.notValidAfter else {
            throw PKIError("client certificate \(certificate.serialHex) expired at \(certificate.notValidAfter)")
        }
    }

    /// Checks everything about an agent's certificate except its dates: this CA signed it, for client
    /// authentication only, naming the agent of its common name.
    public func verifyAgentIssue(_ certificate: Certificate) throws {
        guard certificate.issuer == self.certificate.subject,
              self.certificate.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw PKIError("client certificate \(certificate.subject) is not signed by this controller's CA")
        }
        guard let usage = try? certificate.extensions.extendedKeyUsage, usage.contains(.clientAuth), !usage.contains(.serverAuth),
              !certificate.isCertificateAuthority else {
            throw PKIError("certificate \(certificate.serialHex) is not an agent's client certificate")
        }
        // Certificates issued before they named their agent carry no URI; the store binds their serial to it.
        guard let name = certificate.commonName, certificate.uris.isEmpty || certificate.uris == [CertificateRole.agentURI(name)] else {
            throw PKIError("certificate \(certificate.serialHex) does not name the agent it was issued to")
        }
    }

    /// A new server certificate for the hosts an older one (issued before certificates named their role)
    /// was valid for.
    public func reissueServerCertificate(replacing old: Certificate) throws -> Identity {
        let names = (try? old.extensions.subjectAlternativeNames).map(Array.init) ?? []
        let hosts: [String] = names.compactMap { name in
            switch name {
            case .dnsName(let host): return host
            case .ipAddress(let bytes):
                let raw = Array(bytes.bytes)
                var text = [CChar](repeating: 0, count: 64)
                let family = raw.count == 4 ? AF_INET : AF_INET6
                return raw.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, 64) } == nil ? nil : String(cString: text)
            default: return nil
            }
        }
        return try issueServerCertificate(hosts: hosts)
    }
}

/// SHA-256 pins of a certificate's SubjectPublicKeyInfo (the form kubeadm's CA hashes use).
public enum SPKIPin {
    public static func of(_ certificate: Certificate) -> CAPin { of(certificate.publicKey) }

    public static func of(_ publicKey: Certificate.PublicKey) -> CAPin {
        var serializer = DER.Serializer()
        try? serializer.serialize(publicKey)
        let spki = serializer.serializedBytes
        return CAPin(hex: SHA256.hash(data: spki).hexString)
    }
}

/// Parsing IPv4 and IPv6 literals into address bytes for certificate SANs.
enum IPAddressBytes {
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
