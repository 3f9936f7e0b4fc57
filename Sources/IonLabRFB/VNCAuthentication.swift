import CNettle

/// RFB's VNC Authentication (security type 2): the server sends 16 random bytes and the client returns them
/// DES-encrypted (ECB, two blocks) under a key made of the password's first 8 bytes, zero-padded, with the
/// bits of each byte in reverse order (a quirk of the original implementation that every server follows).
/// The DES is Nettle's: no cipher is written here.
public enum VNCAuthentication {
    public static let challengeSize = 16
    /// Only this many bytes of a password count.
    public static let keySize = 8

    public static func response(to challenge: [UInt8], password: [UInt8]) -> [UInt8] {
        precondition(challenge.count == challengeSize, "a VNC challenge is \(challengeSize) bytes")
        let key = (0..<keySize).map { $0 < password.count ? reversedBits(password[$0]) : 0 }
        var context = des_ctx()
        // 0 means a weak DES key, which the protocol does not care about: the key is set either way.
        _ = key.withUnsafeBufferPointer { nettle_des_set_key(&context, $0.baseAddress) }
        var response = [UInt8](repeating: 0, count: challengeSize)
        challenge.withUnsafeBufferPointer { input in
            response.withUnsafeMutableBufferPointer { output in
                nettle_des_encrypt(&context, challengeSize, output.baseAddress, input.baseAddress)
            }
        }
        return response
    }

    static func reversedBits(_ byte: UInt8) -> UInt8 {
        var input = byte, output: UInt8 = 0
        for _ in 0..<8 {
            output = output << 1 | input & 1
            input >>= 1
        }
        return output
    }
}
