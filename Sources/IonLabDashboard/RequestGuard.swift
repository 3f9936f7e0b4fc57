import Crypto
import Foundation
import IonLabAdminAPI
import IonLabConfig

/// Who may do what over HTTP, decided apart from any I/O: the parts of a request that matter in, a verdict out.
///
/// - Reading needs the dashboard token: as `Authorization: Bearer TOKEN` (Prometheus, curl), or as the
///   session cookie the login form sets (a browser, whose EventSource and images cannot send headers).
/// - A request whose `Host` is not one this server answers to is refused, so that a page on another name
///   that resolves to loopback (DNS rebinding) reads nothing.
/// - A state-changing request carried by the cookie must come from this server's own origin (`Origin`) and
///   carry the page's CSRF value in `X-IonLab-CSRF`: `SameSite=Strict` alone is not enough, since every port
///   of 127.0.0.1 is the same *site*, and another origin cannot set that header without a CORS preflight,
///   which this server never grants.
public struct RequestGuard: Sendable {
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// No valid token or session: 401.
        case unauthenticated
        /// Authenticated or not, this request may not do this: 403, with the reason.
        case forbidden(String)
    }

    /// What the guard reads of a request.
    public struct Request: Sendable {
        public var method: String
        public var host: String?
        public var origin: String?
        public var authorization: String?
        public var sessionCookie: String?
        public var csrfHeader: String?

        public init(method: String, host: String?, origin: String?, authorization: String?, sessionCookie: String?, csrfHeader: String?) {
            self.method = method
            self.host = host
            self.origin = origin
            self.authorization = authorization
            self.sessionCookie = sessionCookie
            self.csrfHeader = csrfHeader
        }

        /// Anything but a read: GET and HEAD only read.
        var changesState: Bool { !["GET", "HEAD"].contains(method.uppercased()) }
    }

    public static let cookieName = "ionlab_session"
    public static let csrfHeaderName = "X-IonLab-CSRF"

    let token: DashboardToken
    /// `host:port` values a request's `Host` may have.
    let hosts: Set<String>
    /// The session cookie's value and the CSRF value, both derived from the token: they hold across
    /// controller restarts, and neither gives the token back.
    public let sessionValue: String
    public let csrfValue: String

    /// `host` is where the server listens; loopback names are accepted for a loopback address.
    public init(token: DashboardToken, host: String, port: Int) {
        self.token = token
        var names = [host]
        if ["127.0.0.1", "::1", "localhost"].contains(host) { names += ["127.0.0.1", "localhost", "[::1]"] }
        if host.contains(":") && !host.hasPrefix("[") { names.append("[\(host)]") }
        hosts = Set(names.map { "\($0):\(port)" })
        sessionValue = Self.derive("ionlab dashboard session", token)
        csrfValue = Self.derive("ionlab dashboard csrf", token)
    }

    private static func derive(_ purpose: String, _ token: DashboardToken) -> String {
        Array(SHA256.hash(data: Data((purpose + "\0" + token.value).utf8))).hexString
    }

    public func check(_ request: Request) -> Verdict {
        if let refused = unknownHost(request) { return refused }
        if let authorization = request.authorization, authorization.hasPrefix("Bearer "), token.matches(authorization.dropFirst(7)) {
            // A browser never adds this header by itself, so no other page can make one carry it.
            return .allowed
        }
        guard let cookie = request.sessionCookie, Self.equal(cookie, sessionValue) else { return .unauthenticated }
        guard request.changesState else { return .allowed }
        return sameOrigin(request) ?? .allowed
    }

    /// The login form: no token yet, but it must come from this server's own page (login CSRF).
    public func checkLogin(_ request: Request) -> Verdict {
        if let refused = unknownHost(request) { return refused }
        guard let origin = request.origin, let host = request.host, origin == "http://\(host)" else {
            return .forbidden("a login must come from this server's own page")
        }
        return .allowed
    }

    private func unknownHost(_ request: Request) -> Verdict? {
        guard let host = request.host, hosts.contains(host.lowercased()) else {
            return .forbidden("this server does not answer to the host '\(Self.shown(request.host ?? ""))'")
        }
        return nil
    }

    private func sameOrigin(_ request: Request) -> Verdict? {
        guard let origin = request.origin, let host = request.host, origin == "http://\(host)" else {
            return .forbidden("a change must come from this server's own page (Origin: \(Self.shown(request.origin ?? "none")))")
        }
        guard let csrf = request.csrfHeader, Self.equal(csrf, csrfValue) else {
            return .forbidden("a change must carry the page's \(Self.csrfHeaderName) header")
        }
        return nil
    }

    /// A peer's header in a reason: short, and escaped for a terminal or a log.
    static func shown(_ value: String) -> String { Format.escaped(String(value.prefix(80))) }

    /// Equality in time that does not depend on where the strings differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        DashboardToken(value: b).matches(Substring(a))
    }
}
