import IonLabPictures

/// The client side of the RFB protocol (RFC 6143) as a pure state machine: bytes from the server go in,
/// what to send and what happened come out. No I/O: the caller moves the bytes (ionlab over a forwarded
/// connection through an agent), and tests feed it a server's bytes directly.
///
/// It speaks what a check needs and no more: versions 3.3, 3.7 and 3.8, the None and VNC Authentication
/// security types, 32-bit true colour, the Raw encoding, key events and framebuffer update requests. Everything the server sends is
/// treated as hostile: sizes are bounded before anything is buffered for them, rectangles must lie inside the
/// framebuffer, and anything unexpected is an error that names it.
public struct RFBClient: Sendable {
    public static let maximumSide = 8192
    public static let maximumName = 4096
    public static let maximumCutText = 1 << 20

    public enum Event: Sendable, Equatable {
        /// The handshake is done: the framebuffer's size and the desktop's name.
        case ready(width: Int, height: Int, name: String)
        /// A framebuffer update was applied, with the rectangles it changed.
        case updated([Rect])
        case bell
    }

    public struct Rect: Sendable, Equatable {
        public var x, y, width, height: Int
        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    enum Phase: Sendable, Equatable {
        case version, securityTypes, securityType33, challenge, securityResult, serverInit, ready
    }

    /// RFB's security types that ionlab speaks.
    enum Security {
        static let none: UInt8 = 1
        static let vncAuthentication: UInt8 = 2
    }

    private var phase = Phase.version
    private var minor = 8
    private var inbox: [UInt8] = []
    private var start = 0
    private let password: [UInt8]?
    /// The client's copy of the server's screen.
    public private(set) var framebuffer: Picture?

    /// `password` answers a server that asks for VNC Authentication; without one only None is spoken. A
    /// server that offers both gets None.
    public init(password: [UInt8]? = nil) {
        self.password = password
    }

    /// Feeds bytes from the server; returns what to send back, and what happened. Throws ``RFBError`` for
    /// anything the server should not have sent.
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws -> (send: [UInt8], events: [Event]) {
        inbox.append(contentsOf: bytes)
        var send: [UInt8] = [], events: [Event] = []
        while let step = try next() {
            send += step.send
            events += step.events
        }
        if start > 0, start == inbox.count {
            inbox.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 20 {
            inbox.removeFirst(start)
            start = 0
        }
        return (send, events)
    }

    public var isReady: Bool { phase == .ready }

    // MARK: Client messages

    /// Asks for the whole framebuffer of this size, or (incremental) only what changes from now on.
    public static func updateRequest(width: Int, height: Int, incremental: Bool) -> [UInt8] {
        [3, incremental ? 1 : 0] + u16(0) + u16(0) + u16(width) + u16(height)
    }

    /// A key pressed or released, by X keysym.
    public static func key(_ keysym: UInt32, down: Bool) -> [UInt8] {
        [4, down ? 1 : 0, 0, 0] + u32(keysym)
    }

    /// The pointer at `x`, `y` of the framebuffer, with buttons 1 to 8 down as the bits of `buttons`.
    public static func pointer(x: Int, y: Int, buttons: UInt8 = 0) -> [UInt8] {
        [5, buttons] + u16(max(0, min(x, 0xFFFF))) + u16(max(0, min(y, 0xFFFF)))
    }

    // MARK: Parsing

    private var available: Int { inbox.count - start }

    private func peek(_ offset: Int) -> UInt8 { inbox[start + offset] }

    private func u16(at offset: Int) -> Int { Int(peek(offset)) << 8 | Int(peek(offset + 1)) }

    private func u32(at offset: Int) -> Int {
        Int(peek(offset)) << 24 | Int(peek(offset + 1)) << 16 | Int(peek(offset + 2)) << 8 | Int(peek(offset + 3))
    }

    /// One complete message off the inbox, or nil until more bytes come.
    private mutating func next() throws -> (send: [UInt8], events: [Event])? {
        switch phase {
        case .version:
            guard available >= 12 else { return nil }
            let text = String(decoding: inbox[start..<(start + 12)], as: UTF8.self)
            guard text.hasPrefix("RFB 003."), text.hasSuffix("\n"), let major = Int(text.dropFirst(4).prefix(3)), major == 3,
                  let serverMinor = Int(text.dropFirst(8).prefix(3)) else {
                throw RFBError("the server's first bytes are not an RFB version")
            }
            start += 12
            // Servers that say 3.5 and the like mean 3.3; newer than 3.8 speak 3.8 with us.
            minor = serverMinor >= 8 ? 8 : serverMinor == 7 ? 7 : 3
            phase = minor == 3 ? .securityType33 : .securityTypes
            return (Array("RFB 003.00\(minor)\n".utf8), [])
        case .securityTypes:
            guard available >= 1 else { return nil }
            let count = Int(peek(0))
            if count == 0 { return try refusal(after: 1) }
            guard available >= 1 + count else { return nil }
            let types = (0..<count).map { peek(1 + $0) }
            start += 1 + count
            let chosen = try choose(from: types)
            if chosen == Security.vncAuthentication {
                phase = .challenge
                return ([chosen], [])
            }
            phase = minor == 8 ? .securityResult : .serverInit
            return ([chosen] + (minor == 8 ? [] : [1]), [])  // 3.7 has no security result after None, so ClientInit follows
        case .securityType33:
            guard available >= 4 else { return nil }
            let type = u32(at: 0)
            if type == 0 { return try refusal(after: 4) }
            guard type <= 255 else { throw RFBError("the server asks for security type \(type); \(Self.spoken)") }
            let chosen = try choose(from: [UInt8(type)])
            start += 4
            if chosen == Security.vncAuthentication {
                phase = .challenge
                return ([], [])
            }
            phase = .serverInit
            return ([1], [])  // ClientInit: shared
        case .challenge:
            guard available >= VNCAuthentication.challengeSize else { return nil }
            let challenge = Array(inbox[start..<(start + VNCAuthentication.challengeSize)])
            start += VNCAuthentication.challengeSize
            phase = .securityResult  // every version answers VNC Authentication with a result
            return (VNCAuthentication.response(to: challenge, password: password ?? []), [])
        case .securityResult:
            guard available >= 4 else { return nil }
            guard u32(at: 0) == 0 else {
                // Only 3.8 gives a reason; before it a failed password just ends the handshake.
                guard minor == 8 else { throw RFBError("the server refused the password (VNC Authentication failed)") }
                guard available >= 8 else { return nil }
                return try refusal(after: 4)
            }
            start += 4
            phase = .serverInit
            return ([1], [])  // ClientInit: shared
        case .serverInit:
            guard available >= 24 else { return nil }
            let width = u16(at: 0), height = u16(at: 2), nameLength = u32(at: 20)
            guard (1...Self.maximumSide).contains(width), (1...Self.maximumSide).contains(height) else {
                throw RFBError("the server's framebuffer is \(width) × \(height), beyond \(Self.maximumSide) a side")
            }
            guard nameLength <= Self.maximumName else { throw RFBError("the server's desktop name is \(nameLength) bytes long") }
            guard available >= 24 + nameLength else { return nil }
            let name = String(decoding: inbox[(start + 24)..<(start + 24 + nameLength)], as: UTF8.self)
            start += 24 + nameLength
            framebuffer = Picture(width: width, height: height)
            phase = .ready
            return (Self.setPixelFormat + Self.setEncodings, [.ready(width: width, height: height, name: name)])
        case .ready:
            return try serverMessage()
        }
    }

    static let spoken = "ionlab speaks None (1), and VNC Authentication (2) when given a password"

    /// None if the server offers it, else VNC Authentication if it is offered and a password was given.
    private func choose(from types: [UInt8]) throws -> UInt8 {
        if types.contains(Security.none) { return Security.none }
        if types.contains(Security.vncAuthentication) {
            guard password != nil else {
                throw RFBError("the server asks for a password (VNC Authentication) and none was given (remote_desktop's password_file)")
            }
            return Security.vncAuthentication
        }
        throw RFBError("the server asks for security type(s) \(types.map(String.init).joined(separator: ", ")); \(Self.spoken)")
    }

    /// A refusal's reason (a length and text) after `offset` bytes, thrown.
    private mutating func refusal(after offset: Int) throws -> (send: [UInt8], events: [Event])? {
        guard available >= offset + 4 else { return nil }
        let length = u32(at: offset)
        guard length <= Self.maximumName else { throw RFBError("the server refused the connection (a reason of \(length) bytes)") }
        guard available >= offset + 4 + length else { return nil }
        let reason = String(decoding: inbox[(start + offset + 4)..<(start + offset + 4 + length)], as: UTF8.self)
        throw RFBError("the server refused the connection: \(reason)")
    }

    private mutating func serverMessage() throws -> (send: [UInt8], events: [Event])? {
        guard available >= 1 else { return nil }
        switch peek(0) {
        case 0: return try framebufferUpdate()
        case 1:  // SetColourMapEntries: unused in true colour, skipped
            guard available >= 6 else { return nil }
            let size = 6 + 6 * u16(at: 4)
            guard available >= size else { return nil }
            start += size
            return ([], [])
        case 2:
            start += 1
            return ([], [.bell])
        case 3:  // ServerCutText: skipped, within bounds
            guard available >= 8 else { return nil }
            let length = u32(at: 4)
            guard length <= Self.maximumCutText else { throw RFBError("the server sent \(length) bytes of cut text") }
            guard available >= 8 + length else { return nil }
            start += 8 + length
            return ([], [])
        case let type:
            throw RFBError("the server sent message type \(type), which RFB does not have")
        }
    }

    private mutating func framebufferUpdate() throws -> (send: [UInt8], events: [Event])? {
        guard available >= 4, var framebuffer else { return nil }
        let count = u16(at: 2)
        // Check every header and find the message's end before applying anything.
        var offset = 4
        var rects: [(Rect, Int)] = []
        for _ in 0..<count {
            guard available >= offset + 12 else { return nil }
            let rect = Rect(x: u16(at: offset), y: u16(at: offset + 2), width: u16(at: offset + 4), height: u16(at: offset + 6))
            let encoding = Int32(truncatingIfNeeded: u32(at: offset + 8))
            guard encoding == 0 else { throw RFBError("the server sent a rectangle in encoding \(encoding); ionlab asked for Raw (0) only") }
            guard rect.x + rect.width <= framebuffer.width, rect.y + rect.height <= framebuffer.height else {
                throw RFBError("the server sent a rectangle \(rect.width) × \(rect.height) at \(rect.x),\(rect.y), outside its \(framebuffer.width) × \(framebuffer.height) framebuffer")
            }
            offset += 12
            rects.append((rect, start + offset))
            offset += rect.width * rect.height * 4
        }
        guard available >= offset else { return nil }
        inbox.withUnsafeBufferPointer { bytes in
            for (rect, first) in rects {
                framebuffer.paste(x: rect.x, y: rect.y, width: rect.width, height: rect.height,
                                  bgrx: UnsafeBufferPointer(rebasing: bytes[first..<(first + rect.width * rect.height * 4)]))
            }
        }
        self.framebuffer = framebuffer
        start += offset
        return ([], [.updated(rects.map(\.0))])
    }

    // MARK: Encoding

    /// 32 bits a pixel, 24 of depth, little-endian, true colour, red at bit 16: bytes come as B, G, R, X.
    static let setPixelFormat: [UInt8] = [0, 0, 0, 0, 32, 24, 0, 1] + u16(255) + u16(255) + u16(255) + [16, 8, 0, 0, 0, 0]
    /// Raw only.
    static let setEncodings: [UInt8] = [2, 0] + u16(1) + u32(0)

    static func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    static func u32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
}

public struct RFBError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
