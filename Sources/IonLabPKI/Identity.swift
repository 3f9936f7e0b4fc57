import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import SwiftASN1
import X509

/// A certificate with its private key, stored as two PEM files (the key readable by its owner only).
public struct Identity: Sendable {
    public var certificate: Certificate
    public var privateKey: P256.Signing.PrivateKey

    public init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    public var certificatePEM: String { get throws { try certificate.serializeAsPEM().pemString } }

    /// The certificate a controller sent, with the key it was asked for: nil if it is unreadable or for
    /// another key.
    public init?(certificatePEM: String, key: P256.Signing.PrivateKey) {
        guard let certificate = try? Certificate(pemEncoded: certificatePEM), certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            return nil
        }
        self.init(certificate: certificate, privateKey: key)
    }

    /// Loads `NAME.pem` and `NAME.key` from a directory.
    public static func load(directory: String, name: String) throws -> Identity {
        let certificate = try PEMFile.readCertificate(path: "\(directory)/\(name).pem")
        let key = try PEMFile.readPrivateKey(path: "\(directory)/\(name).key")
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw PKIError("\(directory)/\(name).key does not match the certificate in \(directory)/\(name).pem")
        }
        return Identity(certificate: certificate, privateKey: key)
    }

    /// Writes the key (mode 0600) and then the certificate, each atomically.
    public func save(directory: String, name: String) throws {
        try PEMFile.write(privateKey.pemRepresentation, path: "\(directory)/\(name).key", mode: 0o600)
        try PEMFile.write(try certificatePEM, path: "\(directory)/\(name).pem", mode: 0o644)
    }

    /// Loads a certificate and its key from one file (``saveBundle(path:)``).
    public static func loadBundle(path: String) throws -> Identity {
        let text = try PEMFile.readText(path: path)
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw PKIError("\(path) does not hold PEM blocks")
        }
        guard let certificateBlock = documents.first(where: { $0.discriminator == "CERTIFICATE" }),
              let keyBlock = documents.first(where: { $0.discriminator.hasSuffix("PRIVATE KEY") }),
              let certificate = try? Certificate(pemDocument: certificateBlock),
              let key = try? P256.Signing.PrivateKey(pemRepresentation: keyBlock.pemString) else {
            throw PKIError("\(path) must hold a certificate and its P-256 private key in PEM")
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw PKIError("\(path): the private key does not match the certificate")
        }
        return Identity(certificate: certificate, privateKey: key)
    }

    /// Writes the certificate and its key into one file (mode 0600), atomically: a crash leaves either the
    /// old identity or the new one, never a key without its certificate.
    public func saveBundle(path: String) throws {
        try PEMFile.write(try certificatePEM + "\n" + privateKey.pemRepresentation + "\n", path: path, mode: 0o600)
    }

    public static func exists(directory: String, name: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(directory)/\(name).pem")
            && FileManager.default.fileExists(atPath: "\(directory)/\(name).key")
    }
}

/// Reading and writing PEM files with errors that name the file.
public enum PEMFile {
    public static func readText(path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PKIError("cannot read \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    public static func readCertificate(path: String) throws -> Certificate {
        do {
            return try Certificate(pemEncoded: try readText(path: path))
        } catch let error as PKIError {
            throw error
        } catch {
            throw PKIError("\(path) does not hold a valid PEM certificate")
        }
    }

    public static func readPrivateKey(path: String) throws -> P256.Signing.PrivateKey {
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: try readText(path: path))
        } catch let error as PKIError {
            throw error
        } catch {
            throw PKIError("\(path) does not hold a valid P-256 private key in PEM")
        }
    }

    /// Writes a file through a temporary name and a rename, with the mode set before any content lands.
    public static func write(_ text: String, path: String, mode: mode_t) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PKIError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        fchmod(fd, mode)
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw PKIError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        // The rename itself survives a crash only once the directory is on disk.
        let parent = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let directory = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}

/// Who a certificate speaks for, as a URI among its subject alternative names: the controller, or one agent.
public enum CertificateRole {
    public static let controllerURI = "urn:ionlab:controller"
    public static func agentURI(_ name: String) -> String { "urn:ionlab:agent:\(name)" }
}

extension Certificate {
    /// The URIs among the subject alternative names.
    public var uris: [String] {
        guard let names = try? extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
    }

    /// Whether the basic constraints make this a CA certificate.
    public var isCertificateAuthority: Bool {
        guard let constraints = try? extensions.basicConstraints, case .isCertificateAuthority = constraints else { return false }
        return true
    }

    /// Whether this is a controller's server certificate: server authentication only, naming the controller.
    public var isControllerCertificate: Bool {
        guard let usage = try? extensions.extendedKeyUsage else { return false }
        return usage.contains(.serverAuth) && !usage.contains(.clientAuth) && !isCertificateAuthority
            && uris.contains(CertificateRole.controllerURI)
    }

    /// The serial number as lowercase hex.
    public var serialHex: String { serialNumber.bytes.hexString }

    /// The subject's common name, if any.
    public var commonName: String? {
        for rdn in subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return attribute.value.description
            }
        }
        return nil
    }
}
