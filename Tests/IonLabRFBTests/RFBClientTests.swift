import IonLabPictures
import IonLabRFB
import Testing

/// The RFB client against scripted servers: bytes in, bytes and events out, no sockets.
@Suite struct RFBClientTests {
    static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func u32(_ value: Int) -> [UInt8] { [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    static func serverInit(width: Int, height: Int, name: String) -> [UInt8] {
        u16(width) + u16(height) + [UInt8](repeating: 0, count: 16) + u32(name.utf8.count) + Array(name.utf8)
    }

    /// A 3.8 handshake through to ready, fed one byte at a time: what the client answers at each stage.
    static func ready(width: Int = 4, height: Int = 2) throws -> RFBClient {
        var client = RFBClient()
        var sent: [UInt8] = []
        var events: [RFBClient.Event] = []
        for byte in Array("RFB 003.008\n".utf8) + [1, 1] + u32(0) + serverInit(width: width, height: height, name: "sway") {
            let step = try client.receive([byte])
            sent += step.send
            events += step.events
        }
        #expect(Array(sent.prefix(12)) == Array("RFB 003.008\n".utf8))
        #expect(sent[12] == 1)  // security None
        #expect(sent[13] == 1)  // ClientInit: shared
        #expect(sent[14] == 0 && sent[18] == 32 && sent[19] == 24)  // SetPixelFormat: 32 bits, depth 24
        #expect(Array(sent.suffix(8)) == [2, 0, 0, 1, 0, 0, 0, 0])  // SetEncodings: Raw only
        #expect(events == [.ready(width: width, height: height, name: "sway")])
        #expect(client.isReady)
        return client
    }

    @Test func aVersion38HandshakeThenAFrameAndAKey() throws {
        var client = try Self.ready()
        #expect(RFBClient.updateRequest(width: 4, height: 2, incremental: false) == [3, 0, 0, 0, 0, 0, 0, 4, 0, 2])
        #expect(RFBClient.key(0xFF0D, down: true) == [4, 1, 0, 0, 0, 0, 0xFF, 0x0D])
        #expect(RFBClient.pointer(x: 640, y: 400) == [5, 0, 0x02, 0x80, 0x01, 0x90])
        #expect(RFBClient.pointer(x: -5, y: 70_000, buttons: 1) == [5, 1, 0, 0, 0xFF, 0xFF])
        // One 2 × 1 rectangle at (1, 1): pixels as B, G, R, X.
        let update: [UInt8] = [0, 0] + Self.u16(1) + Self.u16(1) + Self.u16(1) + Self.u16(2) + Self.u16(1) + Self.u32(0)
            + [0x10, 0x20, 0x30, 0, 0x40, 0x50, 0x60, 0]
        let first = try client.receive(update.prefix(9))
        #expect(first.events.isEmpty)  // nothing applied from half a message
        let rest = try client.receive(update.dropFirst(9))
        #expect(rest.events == [.updated([RFBClient.Rect(x: 1, y: 1, width: 2, height: 1)])])
        let screen = try #require(client.framebuffer)
        #expect(Array(screen.rgb[(5 * 3)..<(7 * 3)]) == [0x30, 0x20, 0x10, 0x60, 0x50, 0x40])
        // Lumas: 34.96 (#302010) and 82.96 (#605040) among 6 black pixels: mean 14.74, variance 795.8028.
        #expect(abs(screen.lumaVariance() - 795.8028) < 0.0001)
        #expect(Picture(width: 4, height: 2).lumaVariance() == 0)
        #expect(screen.changedPixels(since: Picture(width: 4, height: 2)) == 2)
        // A bell, cut text and a colour map are taken in stride.
        #expect(try client.receive([2] + [3, 0, 0, 0] + Self.u32(3) + Array("abc".utf8) + [1, 0] + Self.u16(0) + Self.u16(1) + [1, 2, 3, 4, 5, 6]).events == [.bell])
    }

    @Test func versions37And33Handshakes() throws {
        var v37 = RFBClient()
        #expect(try v37.receive(Array("RFB 003.007\n".utf8)).send == Array("RFB 003.007\n".utf8))
        #expect(try v37.receive([2, 2, 1]).send == [1, 1])  // None, then ClientInit at once: 3.7 sends no result for None
        #expect(try v37.receive(Self.serverInit(width: 8, height: 8, name: "x")).events == [.ready(width: 8, height: 8, name: "x")])

        var v33 = RFBClient()
        #expect(try v33.receive(Array("RFB 003.003\n".utf8)).send == Array("RFB 003.003\n".utf8))
        #expect(try v33.receive(Self.u32(1)).send == [1])
        #expect(try v33.receive(Self.serverInit(width: 8, height: 8, name: "y")).events == [.ready(width: 8, height: 8, name: "y")])
    }

    /// FIPS 81's DES example (key 133457799BBCDFF1, plaintext 0123456789ABCDEF, ciphertext 85E813540F0AB405),
    /// reached through VNC Authentication: the password is that key with each byte's bits reversed, the
    /// challenge that plaintext twice.
    static let fipsPassword: [UInt8] = [0xC8, 0x2C, 0xEA, 0x9E, 0xD9, 0x3D, 0xFB, 0x8F]
    static let fipsChallenge: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF] + [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
    static let fipsResponse: [UInt8] = [0x85, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05] + [0x85, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05]

    @Test func vncAuthenticationAnswersTheChallengeWithDESOfItUnderTheBitReversedPassword() {
        #expect(VNCAuthentication.response(to: Self.fipsChallenge, password: Self.fipsPassword) == Self.fipsResponse)
        // Only the first 8 bytes count, and a shorter password is padded with zeros.
        #expect(VNCAuthentication.response(to: Self.fipsChallenge, password: Self.fipsPassword + [1, 2, 3]) == Self.fipsResponse)
        let short = VNCAuthentication.response(to: Self.fipsChallenge, password: Array("pw".utf8))
        #expect(short == VNCAuthentication.response(to: Self.fipsChallenge, password: Array("pw".utf8) + [0, 0, 0, 0, 0, 0]))
        #expect(short != Self.fipsResponse)
    }

    @Test func aServerThatAsksForAPasswordGetsTheResponseInEveryVersion() throws {
        // 3.8: the client picks type 2, answers the challenge, and sends ClientInit after the result.
        var v38 = RFBClient(password: Self.fipsPassword)
        _ = try v38.receive(Self.hello)
        #expect(try v38.receive([1, 2]).send == [2])
        #expect(try v38.receive(Self.fipsChallenge.prefix(10)).send.isEmpty)  // nothing from half a challenge
        #expect(try v38.receive(Self.fipsChallenge.dropFirst(10)).send == Self.fipsResponse)
        #expect(try v38.receive(Self.u32(0)).send == [1])
        #expect(try v38.receive(Self.serverInit(width: 8, height: 8, name: "locked")).events == [.ready(width: 8, height: 8, name: "locked")])
        // Offered both, it takes None.
        var both = RFBClient(password: Self.fipsPassword)
        _ = try both.receive(Self.hello)
        #expect(try both.receive([2, 2, 1]).send == [1])
        // 3.7 sends a result after VNC Authentication (it sends none after None).
        var v37 = RFBClient(password: Self.fipsPassword)
        _ = try v37.receive(Array("RFB 003.007\n".utf8))
        #expect(try v37.receive([1, 2]).send == [2])
        #expect(try v37.receive(Self.fipsChallenge).send == Self.fipsResponse)
        #expect(try v37.receive(Self.u32(0)).send == [1])
        // 3.3: the server names the type; the client sends nothing until the challenge.
        var v33 = RFBClient(password: Self.fipsPassword)
        _ = try v33.receive(Array("RFB 003.003\n".utf8))
        #expect(try v33.receive(Self.u32(2)).send.isEmpty)
        #expect(try v33.receive(Self.fipsChallenge).send == Self.fipsResponse)
        #expect(try v33.receive(Self.u32(0)).send == [1])
    }

    @Test func aRefusedPasswordIsAnErrorThatSaysSo() throws {
        var v38 = RFBClient(password: Array("wrong".utf8))
        _ = try v38.receive(Self.hello + [1, 2] + Self.fipsChallenge)
        #expect { _ = try v38.receive(Self.u32(1) + Self.u32(22) + Array("Authentication failure".utf8)) } throws: {
            "\($0)" == "the server refused the connection: Authentication failure"
        }
        var v37 = RFBClient(password: Array("wrong".utf8))
        _ = try v37.receive(Array("RFB 003.007\n".utf8) + [1, 2] + Self.fipsChallenge)
        #expect { _ = try v37.receive(Self.u32(1)) } throws: { "\($0)" == "the server refused the password (VNC Authentication failed)" }
    }

    static let hello: [UInt8] = Array("RFB 003.008\n".utf8)
    static let noneAccepted: [UInt8] = hello + [1, 1] + u32(0)

    static let badHandshakes: [([UInt8], String)] = {
        var cases: [([UInt8], String)] = []
        cases.append((Array("HTTP/1.1 200\n".utf8), "not an RFB version"))
        cases.append((hello + [1, 2], "asks for a password (VNC Authentication) and none was given"))
        cases.append((hello + [2, 5, 16], "security type(s) 5, 16; ionlab speaks None (1), and VNC Authentication (2) when given a password"))
        cases.append((hello + [0] + u32(6) + Array("go away".utf8.prefix(6)), "refused the connection: go awa"))
        cases.append((hello + [1, 1] + u32(1) + u32(4) + Array("nope".utf8), "refused the connection: nope"))
        cases.append((noneAccepted + serverInit(width: 9000, height: 2, name: ""), "9000 × 2, beyond 8192 a side"))
        let hugeName: [UInt8] = u16(4) + u16(2) + [UInt8](repeating: 0, count: 16) + u32(1 << 30)
        cases.append((noneAccepted + hugeName, "name is 1073741824 bytes"))
        cases.append((Array("RFB 003.003\n".utf8) + u32(2), "asks for a password"))
        cases.append((Array("RFB 003.003\n".utf8) + u32(300), "security type 300"))
        return cases
    }()

    /// What a hostile or unsuitable server sends is refused by name, before anything is buffered for it.
    @Test(arguments: badHandshakes)
    func badHandshakesAreRefused(bytes: [UInt8], expected: String) {
        var client = RFBClient()
        #expect { _ = try client.receive(bytes) } throws: { "\($0)".contains(expected) }
    }

    static let badMessages: [([UInt8], String)] = {
        var cases: [([UInt8], String)] = []
        let outside: [UInt8] = [0, 0] + u16(1) + u16(3) + u16(0) + u16(2) + u16(1) + u32(0)
        cases.append((outside, "2 × 1 at 3,0, outside its 4 × 2 framebuffer"))
        let hextile: [UInt8] = [0, 0] + u16(1) + u16(0) + u16(0) + u16(1) + u16(1) + u32(7)
        cases.append((hextile, "encoding 7; ionlab asked for Raw (0) only"))
        cases.append(([3, 0, 0, 0] + u32(1 << 24), "16777216 bytes of cut text"))
        cases.append(([9], "message type 9"))
        return cases
    }()

    @Test(arguments: badMessages)
    func badServerMessagesAreRefused(bytes: [UInt8], expected: String) throws {
        var client = try Self.ready()
        #expect { _ = try client.receive(bytes) } throws: { "\($0)".contains(expected) }
    }
}
