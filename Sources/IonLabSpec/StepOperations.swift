import Foundation
import IonLabConfig

/// Where a `package` step's packages come from: names for apt, a local `.deb` sent over the channel, or a
/// `.deb` the VM downloads from a URL (checked against its sha256 when one is given).
///
///     package: [curl, jq]
///     package: {deb: files/tool.deb}
///     package: {url: "https://example.org/tool.deb", sha256: "…"}
public enum PackageSource: Codable, Sendable, Equatable {
    case names([String])
    case deb(path: String)
    case url(String, sha256: String?)

    enum CodingKeys: String, CodingKey { case names, deb, url, sha256 }

    public init(from decoder: Decoder) throws {
        if let list = try? decoder.singleValueContainer().decode([String].self) {
            do {
                try Check.packageNames(list)
            } catch let error as ValueError {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
            }
            self = .names(list)
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let given = [CodingKeys.names, .deb, .url].filter { container.contains($0) }
        guard given.count == 1, let key = given.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "give one of names, deb or url"))
        }
        switch key {
        case .names: self = .names(try container.decode([String].self, forKey: .names, check: Check.packageNames))
        case .deb: self = .deb(path: try container.decode(String.self, forKey: .deb, check: Check.nonEmpty))
        default:
            let url = try container.decode(String.self, forKey: .url, check: Check.httpURL)
            self = .url(url, sha256: try container.decodeIfPresent(String.self, forKey: .sha256, check: Check.sha256))
        }
        if case .url = self {} else if container.contains(.sha256) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [CodingKeys.sha256], debugDescription: "sha256 goes with url"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .names(let names): try container.encode(names, forKey: .names)
        case .deb(let path): try container.encode(path, forKey: .deb)
        case .url(let url, let sha256):
            try container.encode(url, forKey: .url)
            try container.encodeIfPresent(sha256, forKey: .sha256)
        }
    }

    public var summary: String {
        switch self {
        case .names(let names): names.joined(separator: ", ")
        case .deb(let path): URL(fileURLWithPath: path).lastPathComponent
        case .url(let url, _): url
        }
    }
}

/// A `service` step: a systemd unit brought to a state, after installing its unit file (a local file,
/// sent over the channel) when one is given. With `user: NAME` it is that account's user service (for
/// session-bus services such as a portal), with lingering enabled so it runs without a login.
public struct ServiceSpec: Codable, Sendable, Equatable {
    public var name: String
    public var state: String
    public var unit: String?
    public var user: String?

    public static let states = ["started", "restarted", "stopped", "enabled"]

    public init(name: String, state: String, unit: String? = nil, user: String? = nil) {
        self.name = name
        self.state = state
        self.unit = unit
        self.user = user
    }

    enum CodingKeys: String, CodingKey { case name, state, unit, user }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: Check.unitName)
        state = try container.decode(String.self, forKey: .state) { state in
            guard Self.states.contains(state) else {
                throw ValueError("expected started, restarted, stopped or enabled, found '\(state)'")
            }
        }
        unit = try container.decodeIfPresent(String.self, forKey: .unit, check: Check.nonEmpty)
        user = try container.decodeIfPresent(String.self, forKey: .user, check: Check.accountName)
    }
}

/// One check of a `verify` step, run in the VM. Written as a one-key mapping:
///
///     - unit_active: rustdesk           # or {name: portal, user: alice} for a user service
///     - process: ion-portal-service
///     - port: 8080
///     - command: ["test", "-s", "/etc/motd"]
///     - dbus_name: org.freedesktop.portal.Desktop   # or {name: org.example.Portal, user: desktop} on that user's bus
///     - dbus_interface: {path: /org/freedesktop/portal/desktop, interface: org.freedesktop.impl.portal.RemoteDesktop}
///     - rustdesk_id: true
///     - desktop: {user: desktop, within_seconds: 300}
///     - remote_desktop: {port: 5900, terminal_keys: "super+Return", password_file: /etc/vnc-password}
///     - portal_session: {user: desktop, remote_desktop: {terminal_keys: "super+Return"}}
///     - screen_text: {contains: "ionlab-7kx3w9", within_seconds: 30}
public enum Probe: Codable, Sendable, Equatable {
    case unitActive(String, user: String?)
    case process(String)
    case port(Int)
    case command([String])
    /// The name is owned: on `user`'s session bus when given, else on the system bus or any session bus.
    case dbusName(String, user: String?)
    case dbusInterface(path: String, interface: String)
    case rustdeskID
    /// The user's desktop is up: a compositor answers on the user's Wayland socket, the user's session bus
    /// runs, and the desktop portal and a backend own their names. A gate: it waits up to `withinSeconds`.
    case desktop(user: String, withinSeconds: Int)
    /// A remote-desktop session from outside, as a viewer: the controller connects to the VNC server on the
    /// guest's `port` through the agent's channel, takes a frame, opens a terminal with `terminalKeys`, types a
    /// marker, and takes a second frame that must show the change. Runs on the controller, not in the guest.
    /// A server that asks for VNC Authentication gets the password in the guest's `passwordFile`.
    case remoteDesktop(port: Int, terminalKeys: String, passwordFile: String?)
    /// A ScreenCast (and RemoteDesktop) session through the portal's frontend, judged on the controller
    /// against the hypervisor's screen (``PortalSessionProbe``).
    case portalSession(PortalSessionProbe)
    /// A text on a screen, read by OCR on the controller (``ScreenTextProbe``).
    case screenText(ScreenTextProbe)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case unitActive, process, port, command, dbusName, dbusInterface, rustdeskId, desktop, remoteDesktop, portalSession, screenText
    }

    /// sway's and most wlroots desktops' key for a terminal.
    public static let defaultTerminalKeys = "super+Return"

    struct RemoteDesktopFields: Codable {
        var port: Int
        var terminalKeys: String?
        var passwordFile: String?
    }

    /// Whether the probe runs in the guest (the verify script) or on the controller.
    public var runsInGuest: Bool {
        switch self {
        case .remoteDesktop, .portalSession, .screenText: false
        default: true
        }
    }

    /// How long a desktop gate waits unless it says: about what a desktop takes to come up under TCG, twice.
    public static let defaultDesktopWait = 300

    struct DesktopFields: Codable {
        var user: String
        var withinSeconds: Int?
    }

    struct UnitFields: Codable {
        var name: String
        var user: String?
    }

    struct NameFields: Codable {
        var name: String
        var user: String?
    }

    struct InterfaceFields: Codable {
        var path: String
        var interface: String
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let given = CodingKeys.allCases.filter { container.contains($0) }
        guard given.count == 1, let key = given.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "a probe is one of unit_active, process, port, command, dbus_name, dbus_interface, rustdesk_id, desktop, remote_desktop, portal_session, screen_text"))
        }
        switch key {
        case .unitActive:
            if let name = try? container.decode(String.self, forKey: key) {
                try container.validate(key) { try Check.unitName(name) }
                self = .unitActive(name, user: nil)
            } else {
                let fields = try container.decode(UnitFields.self, forKey: key)
                try container.validate(key) {
                    try Check.unitName(fields.name)
                    if let user = fields.user { try Check.accountName(user) }
                }
                self = .unitActive(fields.name, user: fields.user)
            }
        case .process: self = .process(try container.decode(String.self, forKey: key, check: Check.processName))
        case .port: self = .port(try container.decode(Int.self, forKey: key, check: Check.range(1...65_535)))
        case .command: self = .command(try container.decode([String].self, forKey: key, check: Check.nonEmpty))
        case .dbusName:
            if let name = try? container.decode(String.self, forKey: key) {
                try container.validate(key) { try Check.busName(name) }
                self = .dbusName(name, user: nil)
            } else {
                let fields = try container.decode(NameFields.self, forKey: key)
                try container.validate(key) {
                    try Check.busName(fields.name)
                    if let user = fields.user { try Check.accountName(user) }
                }
                self = .dbusName(fields.name, user: fields.user)
            }
        case .dbusInterface:
            let fields = try container.decode(InterfaceFields.self, forKey: key)
            try container.validate(key) {
                try Check.objectPath(fields.path)
                try Check.interfaceName(fields.interface)
            }
            self = .dbusInterface(path: fields.path, interface: fields.interface)
        case .rustdeskId:
            _ = try container.decode(Bool.self, forKey: key) { value in
                guard value else { throw ValueError("only `rustdesk_id: true` means something") }
            }
            self = .rustdeskID
        case .desktop:
            let fields = try container.decode(DesktopFields.self, forKey: key)
            try container.validate(key) {
                try Check.accountName(fields.user)
                if let wait = fields.withinSeconds { try Check.range(0...3600)(wait) }
            }
            self = .desktop(user: fields.user, withinSeconds: fields.withinSeconds ?? Self.defaultDesktopWait)
        case .remoteDesktop:
            let fields = try container.decode(RemoteDesktopFields.self, forKey: key)
            try container.validate(key) {
                try Check.range(1...65_535)(fields.port)
                if let keys = fields.terminalKeys { _ = try KeyChord(parsing: keys) }
                if let file = fields.passwordFile { try Check.absolutePath(file) }
            }
            self = .remoteDesktop(port: fields.port, terminalKeys: fields.terminalKeys ?? Self.defaultTerminalKeys, passwordFile: fields.passwordFile)
        case .portalSession: self = .portalSession(try container.decode(PortalSessionProbe.self, forKey: key))
        case .screenText: self = .screenText(try container.decode(ScreenTextProbe.self, forKey: key))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .unitActive(let name, let user): try container.encode(UnitFields(name: name, user: user), forKey: .unitActive)
        case .process(let name): try container.encode(name, forKey: .process)
        case .port(let port): try container.encode(port, forKey: .port)
        case .command(let argv): try container.encode(argv, forKey: .command)
        case .dbusName(let name, nil): try container.encode(name, forKey: .dbusName)
        case .dbusName(let name, let user?): try container.encode(NameFields(name: name, user: user), forKey: .dbusName)
        case .dbusInterface(let path, let interface): try container.encode(InterfaceFields(path: path, interface: interface), forKey: .dbusInterface)
        case .rustdeskID: try container.encode(true, forKey: .rustdeskId)
        case .desktop(let user, let wait): try container.encode(DesktopFields(user: user, withinSeconds: wait), forKey: .desktop)
        case .remoteDesktop(let port, let keys, let file):
            try container.encode(RemoteDesktopFields(port: port, terminalKeys: keys, passwordFile: file), forKey: .remoteDesktop)
        case .portalSession(let probe): try container.encode(probe, forKey: .portalSession)
        case .screenText(let probe): try container.encode(probe, forKey: .screenText)
        }
    }

    /// How the probe reads in a verdict line: "unit rustdesk", "port 8080".
    public var label: String {
        switch self {
        case .unitActive(let name, let user): user.map { "unit \(name) of \($0)" } ?? "unit \(name)"
        case .process(let name): "process \(name)"
        case .port(let port): "port \(port)"
        case .command(let argv): "command \(argv.joined(separator: " "))"
        case .dbusName(let name, let user): user.map { "D-Bus \(name) of \($0)" } ?? "D-Bus \(name)"
        case .dbusInterface(_, let interface): "D-Bus \(interface)"
        case .rustdeskID: "RustDesk ID"
        case .desktop(let user, _): "desktop of \(user)"
        case .remoteDesktop(let port, _, _): "remote desktop on port \(port)"
        case .portalSession(let probe): probe.terminalKeys == nil ? "portal session of \(probe.user)" : "portal session of \(probe.user) with remote desktop"
        case .screenText(let probe): probe.label
        }
    }
}

extension Check {
    public static func httpURL(_ text: String) throws {
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw ValueError("expected an http or https URL, found '\(text)'")
        }
    }

    public static func sha256(_ text: String) throws {
        guard text.count == 64, text.allSatisfy(\.isHexDigit) else { throw ValueError("expected 64 hex digits, found '\(text)'") }
    }

    /// A login name: lowercase letters, digits, `-` and `_`, starting with a letter or `_`.
    public static func accountName(_ name: String) throws {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789-_")
        guard let first = name.first, first.isLetter || first == "_", name.count <= 32, name.unicodeScalars.allSatisfy(allowed.contains) else {
            throw ValueError("expected a login name, found '\(name)'")
        }
    }

    /// A systemd unit name without its path: ASCII letters, digits and `:-_.@\`, at most 255, not starting
    /// with `-` (it would read as an option).
    public static func unitName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 255, !name.hasPrefix("-"), !name.hasPrefix("."),
              name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ":-_.@\\".unicodeScalars.contains($0)) }) else {
            throw ValueError("expected a systemd unit name, found '\(name)'")
        }
    }

    /// Debian package names as apt takes them: `name`, `name:arch`, `name=version` or `name/release`,
    /// where a name is lowercase letters, digits, `+`, `-` and `.`, starting with a letter or digit.
    public static func packageNames(_ names: [String]) throws {
        try nonEmpty(names)
        for name in names { try packageName(name) }
    }

    public static func packageName(_ text: String) throws {
        let problem = ValueError("expected a Debian package name (such as curl, libfoo1:amd64, curl=7.88.1-10), found '\(text)'")
        var name = Substring(text)
        var suffix: Substring = ""
        var suffixAllowed = CharacterSet()
        if let mark = text.firstIndex(where: { $0 == "=" || $0 == "/" }) {
            name = text[..<mark]
            suffix = text[text.index(after: mark)...]
            suffixAllowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ".+~:-_"))
            guard !suffix.isEmpty else { throw problem }
        }
        if let colon = name.firstIndex(of: ":") {
            let arch = name[name.index(after: colon)...]
            guard !arch.isEmpty, arch.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.lowercaseLetters.contains($0) || CharacterSet.decimalDigits.contains($0) || $0 == "-") }) else {
                throw problem
            }
            name = name[..<colon]
        }
        let nameAllowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789+-.")
        guard name.count >= 2, let first = name.unicodeScalars.first, CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789").contains(first),
              name.unicodeScalars.allSatisfy(nameAllowed.contains), suffix.unicodeScalars.allSatisfy({ $0.isASCII && suffixAllowed.contains($0) }) else {
            throw problem
        }
    }

    /// A process name as /proc/PID/comm shows it: 1 to 15 bytes, no `/`, no control characters.
    public static func processName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 15, !name.contains("/"), name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw ValueError("expected a process name (1-15 characters, as /proc/PID/comm shows it), found '\(name)'")
        }
    }

    /// A D-Bus bus name: a unique name (`:1.42`) or two or more dot-separated elements of letters, digits,
    /// `_` and `-`, not starting with a digit; at most 255.
    public static func busName(_ name: String) throws {
        let problem = ValueError("expected a D-Bus name such as org.freedesktop.portal.Desktop, found '\(name)'")
        guard name.utf8.count <= 255 else { throw problem }
        let unique = name.hasPrefix(":")
        let elements = (unique ? name.dropFirst() : Substring(name)).split(separator: ".", omittingEmptySubsequences: false)
        guard elements.count >= 2, elements.allSatisfy({ element in
            guard let first = element.unicodeScalars.first else { return false }
            return (unique || !CharacterSet.decimalDigits.contains(first))
                && element.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-") }
        }) else { throw problem }
    }

    /// A D-Bus interface name: two or more dot-separated elements of letters, digits and `_`, not starting
    /// with a digit; at most 255.
    public static func interfaceName(_ name: String) throws {
        let elements = name.split(separator: ".", omittingEmptySubsequences: false)
        guard name.utf8.count <= 255, elements.count >= 2, elements.allSatisfy({ element in
            guard let first = element.unicodeScalars.first, !CharacterSet.decimalDigits.contains(first) else { return false }
            return element.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }
        }) else {
            throw ValueError("expected a D-Bus interface name such as org.freedesktop.impl.portal.RemoteDesktop, found '\(name)'")
        }
    }

    /// A D-Bus object path: `/`, or `/`-separated elements of letters, digits and `_`.
    public static func objectPath(_ path: String) throws {
        let elements = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard path.hasPrefix("/"), path == "/" || elements.allSatisfy({ !$0.isEmpty && $0.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") } }) else {
            throw ValueError("expected a D-Bus object path such as /org/freedesktop/portal/desktop, found '\(path)'")
        }
    }

    /// A value handed to a guest tool as an argument: printable, not empty, not starting with `-`.
    public static func argumentValue(_ text: String) throws {
        guard !text.isEmpty, !text.hasPrefix("-"), text.utf8.count <= 1024, text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw ValueError("expected a printable value not starting with '-', found '\(text)'")
        }
    }
}

/// The built-in RustDesk step: install the package (a local `.deb` sent over the channel, or a URL, by
/// default the official release of `version`), set a permanent password (given, or generated and shown
/// once), optionally point it at an ID/relay server, start the `rustdesk` service and read the ID.
public struct RustDeskSpec: Codable, Sendable, Equatable {
    public static let defaultVersion = "1.3.7"

    public var deb: String?
    public var url: String?
    public var sha256: String?
    public var version: String
    public var password: String?
    public var idServer: String?
    public var relayServer: String?
    public var key: String?

    public init(deb: String? = nil, url: String? = nil, sha256: String? = nil, version: String = defaultVersion, password: String? = nil,
                idServer: String? = nil, relayServer: String? = nil, key: String? = nil) {
        self.deb = deb
        self.url = url
        self.sha256 = sha256
        self.version = version
        self.password = password
        self.idServer = idServer
        self.relayServer = relayServer
        self.key = key
    }

    enum CodingKeys: String, CodingKey { case deb, url, sha256, version, password, idServer, relayServer, key }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        deb = try container.decodeIfPresent(String.self, forKey: .deb, check: Check.nonEmpty)
        url = try container.decodeIfPresent(String.self, forKey: .url, check: Check.httpURL)
        if deb != nil, url != nil {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [CodingKeys.url], debugDescription: "give deb or url, not both"))
        }
        sha256 = try container.decodeIfPresent(String.self, forKey: .sha256, check: Check.sha256)
        version = try container.decodeIfPresent(String.self, forKey: .version) { version in
            guard !version.isEmpty, version.allSatisfy({ $0.isNumber || $0 == "." }) else { throw ValueError("expected a version such as 1.3.7, found '\(version)'") }
        } ?? Self.defaultVersion
        password = try container.decodeIfPresent(String.self, forKey: .password) { password in
            // It travels on one line of stdin: no line breaks or other control characters.
            guard password.count >= 8, password.utf8.count <= 128, !password.hasPrefix("-"),
                  password.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw ValueError("must be 8 to 128 printable characters, not starting with '-'")
            }
        }
        idServer = try container.decodeIfPresent(String.self, forKey: .idServer, check: Check.argumentValue)
        relayServer = try container.decodeIfPresent(String.self, forKey: .relayServer, check: Check.argumentValue)
        key = try container.decodeIfPresent(String.self, forKey: .key, check: Check.argumentValue)
    }

    /// The official release `.deb` for x86_64 of this version.
    public var releaseURL: String {
        "https://github.com/rustdesk/rustdesk/releases/download/\(version)/rustdesk-\(version)-x86_64.deb"
    }

    /// Where the package comes from: the local file, the URL given, or the official release.
    public var package: PackageSource {
        if let deb { return .deb(path: deb) }
        return .url(url ?? releaseURL, sha256: sha256)
    }
}

/// Keys pressed together, as people write them: `super+Return`, `ctrl+alt+t`. Modifiers first, then one key;
/// each becomes an X keysym, as RFB key events take them.
public struct KeyChord: TextValue, Sendable, Equatable {
    public let keysyms: [UInt32]
    public let description: String

    static let named: [String: UInt32] = {
        var names: [String: UInt32] = [
            "super": 0xFFEB, "ctrl": 0xFFE3, "control": 0xFFE3, "alt": 0xFFE9, "shift": 0xFFE1,
            "return": 0xFF0D, "enter": 0xFF0D, "tab": 0xFF09, "escape": 0xFF1B, "space": 0x20,
            "backspace": 0xFF08, "delete": 0xFFFF, "insert": 0xFF63, "home": 0xFF50, "end": 0xFF57,
            "left": 0xFF51, "up": 0xFF52, "right": 0xFF53, "down": 0xFF54, "pageup": 0xFF55, "pagedown": 0xFF56,
        ]
        for number in 1...12 { names["f\(number)"] = 0xFFBD + UInt32(number) }
        return names
    }()

    public init(parsing text: String) throws {
        let parts = text.split(separator: "+", omittingEmptySubsequences: false).map { $0.lowercased() }
        guard !parts.isEmpty, parts.count <= 4 else { throw ValueError("expected keys such as super+Return, found '\(text)'") }
        keysyms = try parts.map { part in
            if let keysym = Self.named[part] { return keysym }
            guard part.count == 1, let ascii = part.unicodeScalars.first?.value, (0x21...0x7E).contains(ascii) else {
                throw ValueError("'\(part)' is not a key ionlab knows (super, ctrl, alt, shift, Return, Tab, Escape, space, BackSpace, Delete, Insert, Home, End, Left, Up, Right, Down, PageUp, PageDown, F1 to F12, or one character) in '\(text)'")
            }
            return ascii
        }
        description = text
    }
}
