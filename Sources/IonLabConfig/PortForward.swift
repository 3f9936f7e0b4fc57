/// A TCP port forward as ssh users write one: `[ADDR:]PORT:[HOST:]PORT`. The first half is where it listens
/// (on the host for a forward, in the guest for a reverse one), the second where each connection goes;
/// either address defaults to 127.0.0.1, so nothing listens beyond loopback unless asked.
public struct PortForward: TextValue, Sendable, Hashable {
    public var listen: Endpoint
    public var target: Endpoint

    public static let defaultAddress = "127.0.0.1"

    public init(listen: Endpoint, target: Endpoint) {
        self.listen = listen
        self.target = target
    }

    /// Parses `PORT:PORT`, `ADDR:PORT:PORT`, `PORT:HOST:PORT` or `ADDR:PORT:HOST:PORT` (IPv6 in brackets).
    public init(parsing text: String) throws {
        let parts = try Self.split(text)
        let listenHost: String, listenPort: String, targetHost: String, targetPort: String
        switch parts.count {
        case 2:
            (listenHost, listenPort, targetHost, targetPort) = (Self.defaultAddress, parts[0], Self.defaultAddress, parts[1])
        case 3 where UInt16(parts[0]) != nil:
            (listenHost, listenPort, targetHost, targetPort) = (Self.defaultAddress, parts[0], parts[1], parts[2])
        case 3:
            (listenHost, listenPort, targetHost, targetPort) = (parts[0], parts[1], Self.defaultAddress, parts[2])
        case 4:
            (listenHost, listenPort, targetHost, targetPort) = (parts[0], parts[1], parts[2], parts[3])
        default:
            throw ValueError("expected [ADDR:]PORT:[HOST:]PORT, found '\(text)'")
        }
        self.init(listen: try Self.endpoint(listenHost, listenPort, in: text),
                  target: try Self.endpoint(targetHost, targetPort, in: text))
    }

    public var description: String { "\(listen):\(target)" }

    /// Splits at colons outside brackets, unwrapping bracketed IPv6 addresses.
    private static func split(_ text: String) throws -> [String] {
        var parts: [String] = []
        var current = ""
        var bracketed = false
        for character in text {
            switch character {
            case "[" where !bracketed && current.isEmpty: bracketed = true
            case "]" where bracketed: bracketed = false
            case ":" where !bracketed:
                parts.append(current)
                current = ""
            default: current.append(character)
            }
        }
        guard !bracketed else { throw ValueError("an IPv6 address is missing its ']' in '\(text)'") }
        parts.append(current)
        return parts
    }

    private static func endpoint(_ host: String, _ port: String, in text: String) throws -> Endpoint {
        guard let number = UInt16(port), number > 0 else {
            throw ValueError("'\(port)' is not a port (1-65535) in '\(text)'")
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%")
        guard !host.isEmpty, host.utf8.count <= 253, host.allSatisfy({ allowed.contains($0) }) else {
            throw ValueError("'\(host)' is not a host name or address in '\(text)'")
        }
        return Endpoint(host: host, port: Int(number))
    }
}
