import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import X509

/// One-time enrollment tokens: 160 random bits, shown once, stored only as a SHA-256 hash.
public enum EnrollmentToken {
    /// A new token, written as 32 base32 characters prefixed with "ionlab-".
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "ionlab-" + Base32.encode(bytes)
    }

    /// The hash the store keeps in place of the token.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).hexString
    }
}

enum Base32 {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")

    static func encode(_ bytes: [UInt8]) -> String {
        var output = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return output
    }
}

/// An agent's key pair and certificate signing request. The key never leaves the agent's machine.
public enum AgentKeys {
    public static func makeKeyAndCSR(name: String) throws -> (P256.Signing.PrivateKey, String) {
        let key = P256.Signing.PrivateKey()
        return (key, try csr(for: key, name: name))
    }

    /// A CSR for an existing key.
    public static func csr(for key: P256.Signing.PrivateKey, name: String) throws -> String {
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: .init(key),
            attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
        return try csr.serializeAsPEM().pemString
    }
}
