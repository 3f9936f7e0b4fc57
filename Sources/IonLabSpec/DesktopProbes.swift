import IonLabConfig

/// A ScreenCast session through xdg-desktop-portal's frontend, as `user` on that user's session bus, the way
/// RustDesk asks for a Wayland screen (`portal_session`):
///
///     - portal_session: {user: desktop}
///     - portal_session: {user: desktop, seconds: 3, remote_desktop: {terminal_keys: "super+Return"}}
///
/// Frames come from PipeWire; the last one must match the screen the hypervisor shows. With `remote_desktop`,
/// a RemoteDesktop session through the same frontend opens a terminal and types a marker through
/// NotifyKeyboardKeysym, which the controller must read on that frame.
public struct PortalSessionProbe: Codable, Sendable, Equatable {
    public var user: String
    /// How long frames are counted after the first.
    public var seconds: Int
    /// The keys that open a terminal, for the RemoteDesktop session; nil for ScreenCast only.
    public var terminalKeys: String?

    public static let defaultSeconds = 3

    public init(user: String, seconds: Int = defaultSeconds, terminalKeys: String? = nil) {
        self.user = user
        self.seconds = seconds
        self.terminalKeys = terminalKeys
    }

    struct RemoteDesktopFields: Codable {
        var terminalKeys: String?
    }

    enum CodingKeys: String, CodingKey { case user, seconds, remoteDesktop }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        user = try container.decode(String.self, forKey: .user, check: Check.accountName)
        seconds = try container.decodeIfPresent(Int.self, forKey: .seconds, check: Check.range(0...60)) ?? Self.defaultSeconds
        if let remote = try container.decodeIfPresent(RemoteDesktopFields.self, forKey: .remoteDesktop) {
            let keys = remote.terminalKeys ?? Probe.defaultTerminalKeys
            try container.validate(.remoteDesktop) { _ = try KeyChord(parsing: keys) }
            terminalKeys = keys
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(seconds, forKey: .seconds)
        try container.encodeIfPresent(terminalKeys.map { RemoteDesktopFields(terminalKeys: $0) }, forKey: .remoteDesktop)
    }
}

/// Where a screen's text is read from.
public enum ScreenSource: Sendable, Equatable {
    /// The screen as the hypervisor shows it (libvirt's screenshot): nothing in the guest takes part.
    case hypervisor
    /// A frame from the guest's VNC server on `port`, as a viewer gets it through the agent's channel.
    case remoteDesktop(port: Int, passwordFile: String?)
}

/// Waits until a text is on a screen, read by OCR on the controller's host (`screen_text`), as NixOS's
/// `wait_for_text` and openQA's OCR do:
///
///     - screen_text: {contains: "ionlab-7kx3w9", within_seconds: 30}
///     - screen_text: {contains: "ready", source: remote_desktop, port: 5900}
public struct ScreenTextProbe: Codable, Sendable, Equatable {
    public var contains: String
    public var withinSeconds: Int
    public var source: ScreenSource

    public static let defaultWait = 30

    public init(contains: String, withinSeconds: Int = defaultWait, source: ScreenSource = .hypervisor) {
        self.contains = contains
        self.withinSeconds = withinSeconds
        self.source = source
    }

    enum CodingKeys: String, CodingKey { case contains, withinSeconds, source, port, passwordFile }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        contains = try container.decode(String.self, forKey: .contains, check: Check.screenText)
        withinSeconds = try container.decodeIfPresent(Int.self, forKey: .withinSeconds, check: Check.range(0...3600)) ?? Self.defaultWait
        let kind = try container.decodeIfPresent(String.self, forKey: .source) { kind in
            guard ["screen", "remote_desktop"].contains(kind) else { throw ValueError("expected screen or remote_desktop, found '\(kind)'") }
        } ?? "screen"
        if kind == "remote_desktop" {
            let port = try container.decodeIfPresent(Int.self, forKey: .port, check: Check.range(1...65_535)) ?? 5900
            let file = try container.decodeIfPresent(String.self, forKey: .passwordFile, check: Check.absolutePath)
            source = .remoteDesktop(port: port, passwordFile: file)
        } else {
            for key in [CodingKeys.port, .passwordFile] where container.contains(key) {
                try container.validate(key) { throw ValueError("goes with source: remote_desktop") }
            }
            source = .hypervisor
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(contains, forKey: .contains)
        try container.encode(withinSeconds, forKey: .withinSeconds)
        switch source {
        case .hypervisor: try container.encode("screen", forKey: .source)
        case .remoteDesktop(let port, let file):
            try container.encode("remote_desktop", forKey: .source)
            try container.encode(port, forKey: .port)
            try container.encodeIfPresent(file, forKey: .passwordFile)
        }
    }

    /// "screen text 'ionlab-7kx3w9'", or "… on port 5900" for a VNC server's.
    public var label: String {
        switch source {
        case .hypervisor: "screen text '\(contains)'"
        case .remoteDesktop(let port, _): "screen text '\(contains)' on port \(port)"
        }
    }
}

/// Input to a VM's desktop through the hypervisor (virDomainSendKey) and a wait on its screen (the screenshot
/// API and OCR), for a VM with a screen and nothing listening in the guest: `ionlab desktop key | type |
/// wait-text`, and the `desktop` step:
///
///     - desktop: {key: "super+Return"}
///     - desktop: {type: "echo hello\n"}
///     - desktop: {wait_text: "hello", within_seconds: 60}
public enum DesktopInput: Codable, Sendable, Equatable {
    /// Keys pressed together (`super+Return`).
    case key(KeyChord)
    /// Text typed a character at a time on a US keyboard; a line break is Return.
    case type(String)
    /// Waits until OCR reads `text` on the hypervisor's screen.
    case waitText(String, withinSeconds: Int)

    /// The longest text `type` takes: it goes a key at a time.
    public static let maximumTyped = 4096

    enum CodingKeys: String, CodingKey, CaseIterable { case key, type, waitText, withinSeconds }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let given = [CodingKeys.key, .type, .waitText].filter { container.contains($0) }
        guard given.count == 1, let key = given.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "give one of key, type or wait_text"))
        }
        if key != .waitText, container.contains(.withinSeconds) {
            try container.validate(.withinSeconds) { throw ValueError("goes with wait_text") }
        }
        switch key {
        case .key: self = .key(try container.decode(KeyChord.self, forKey: .key))
        case .type: self = .type(try container.decode(String.self, forKey: .type, check: Check.typedText))
        default:
            let text = try container.decode(String.self, forKey: .waitText, check: Check.screenText)
            self = .waitText(text, withinSeconds: try container.decodeIfPresent(Int.self, forKey: .withinSeconds, check: Check.range(0...3600)) ?? ScreenTextProbe.defaultWait)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .key(let chord): try container.encode(chord, forKey: .key)
        case .type(let text): try container.encode(text, forKey: .type)
        case .waitText(let text, let wait):
            try container.encode(text, forKey: .waitText)
            try container.encode(wait, forKey: .withinSeconds)
        }
    }

    /// "press super+Return", "type 12 characters", "wait for 'hello' on the screen".
    public var summary: String {
        switch self {
        case .key(let chord): "press \(chord.description)"
        case .type(let text): "type \(text.count) character(s)"
        case .waitText(let text, _): "wait for '\(text)' on the screen"
        }
    }
}

extension Check {
    /// A text to look for on a screen: 1 to 256 printable characters, not only spaces.
    public static func screenText(_ text: String) throws {
        guard text.contains(where: { !$0.isWhitespace }), text.count <= 256,
              text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw ValueError("expected 1 to 256 printable characters to look for on the screen")
        }
    }

    /// A text the hypervisor's US keyboard can type: printable ASCII, tabs and line breaks, at most 4096.
    public static func typedText(_ text: String) throws {
        guard !text.isEmpty, text.count <= DesktopInput.maximumTyped,
              text.unicodeScalars.allSatisfy({ ($0.value >= 0x20 && $0.value < 0x7F) || $0 == "\n" || $0 == "\t" }) else {
            throw ValueError("expected 1 to \(DesktopInput.maximumTyped) characters of printable ASCII, tabs and line breaks (what a US keyboard types)")
        }
    }
}
