import Foundation
import HTTPTypes
import Hummingbird
import IonLabAdminAPI
import Synchronization

/// `serve --http HOST:PORT`: the controller's HTTP side. The dashboard page and its assets (bundled with the
/// binary), its JSON, live events as server-sent events, VM screens, the three changes the page may make, and
/// `/metrics` in Prometheus' text format. Who may do what is `RequestGuard`'s; what the lab holds is the
/// `DashboardSource`'s; this type only maps routes to them.
public struct DashboardServer: Sendable {
    public let host: String
    public let port: Int
    let token: DashboardToken
    let metrics: LabMetrics
    let source: any DashboardSource
    let limits: HTTPLimits

    public init(host: String, port: Int, token: DashboardToken, metrics: LabMetrics, source: any DashboardSource,
                limits: HTTPLimits = HTTPLimits()) {
        self.host = host
        self.port = port
        self.token = token
        self.metrics = metrics
        self.source = source
        self.limits = limits
    }

    /// Serves until the task is cancelled; throws if the address cannot be bound.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        // The guard knows the port only once bound (a port of 0 picks one).
        let guardBox = GuardBox()
        let router = Router()
        router.add(middleware: SecurityHeaders())
        addPublicRoutes(router, guardBox)
        let guarded = router.group().add(middleware: Guarded(box: guardBox))
        addPageRoutes(guarded, guardBox)
        addActionRoutes(guarded)
        let connections = ConnectionLimit.Counter(limit: limits.connections)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionLimit(counter: connections)],
                                                idleTimeout: .seconds(Int64(limits.idleSeconds)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "ionlab"),
            onServerRunning: { [host, token] channel in
                let port = channel.localAddress?.port ?? 0
                guardBox.set(RequestGuard(token: token, host: host, port: port))
                await onListening(port)
            })
        try await app.run()
    }

    /// The login page and form, and the page's assets: no token needed.
    private func addPublicRoutes(_ router: Router<BasicRequestContext>, _ guardBox: GuardBox) {
        router.get("login") { _, _ in Assets.response(.login) }
        router.post("login") { request, _ -> Response in
            let requestGuard = try guardBox.get()
            if case .forbidden(let reason) = requestGuard.checkLogin(.init(request)) { return .text(.forbidden, reason) }
            var request = request
            let form = try? URLEncodedFormDecoder().decode(LoginForm.self, from: String(buffer: try await request.collectBody(upTo: 4096)))
            guard let form, self.token.matches(form.token.trimmingWhitespace) else {
                return Response(status: .seeOther, headers: [.location: "/login?wrong"])
            }
            return Response(status: .seeOther, headers: [
                .location: "/",
                .setCookie: "\(RequestGuard.cookieName)=\(requestGuard.sessionValue); Path=/; HttpOnly; SameSite=Strict",
            ])
        }
        router.get("assets/:file") { _, context -> Response in
            guard let asset = context.parameters.get("file").flatMap(Assets.File.init(rawValue:)) else { return .text(.notFound, "no such file") }
            return Assets.response(asset)
        }
    }

    /// What a signed-in page reads.
    private func addPageRoutes(_ group: RouterGroup<BasicRequestContext>, _ guardBox: GuardBox) {
        group.get("/") { _, _ in Assets.response(.index) }
        group.get("api/session") { _, _ in
            try Response.json(["csrf": try guardBox.get().csrfValue, "header": RequestGuard.csrfHeaderName])
        }
        group.get("api/overview") { [source] _, _ in try Response.json(try await source.overview()) }
        let frames = FrameCache()
        group.get("api/events") { [source, limits] request, _ in
            let after = request.headers[.lastEventID].flatMap { Int64($0) } ?? request.uri.queryParameters.get("after").flatMap { Int64($0) }
            return EventStreamResponse.response(source: source, after: after, limits: limits, cache: frames)
        }
        group.get("api/vms/:name/screen") { [source] _, context -> Response in
            let png = try await source.screen(of: try context.parameters.require("name"))
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        group.get("api/vms/:name/pictures/:picture") { [source] _, context -> Response in
            guard let png = try await source.picture(of: try context.parameters.require("name"), named: try context.parameters.require("picture")) else {
                return .text(.notFound, "no such picture")
            }
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        group.get("metrics") { [metrics, source] _, _ -> Response in
            let body = metrics.scrape(await source.metricsSnapshot())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    /// What a signed-in page may change: POST only, guarded against other origins (`Guarded`).
    private func addActionRoutes(_ group: RouterGroup<BasicRequestContext>) {
        group.post("api/fleets/:name/down") { [source] _, context in
            try await Self.perform(.down(fleet: try context.parameters.require("name")), source)
        }
        group.post("api/vms/:name/restart") { [source] _, context in
            try await Self.perform(.restart(vm: try context.parameters.require("name")), source)
        }
        group.post("api/vms/:name/revert") { [source] request, context in
            var request = request
            let body = try await request.collectBody(upTo: 4096)
            guard let snapshot = try? JSONDecoder().decode(RevertBody.self, from: body).snapshot else {
                return Response.text(.badRequest, "a revert takes {\"snapshot\": NAME}")
            }
            return try await Self.perform(.revert(vm: try context.parameters.require("name"), snapshot: snapshot), source)
        }
        group.post("logout") { _, _ in
            Response(status: .seeOther, headers: [.location: "/login", .setCookie: "\(RequestGuard.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"])
        }
    }

    private struct RevertBody: Decodable { var snapshot: String }
    private struct LoginForm: Decodable { var token: String }

    private static func perform(_ action: DashboardAction, _ source: any DashboardSource) async throws -> Response {
        let done: String
        do {
            done = try await source.perform(action)
        } catch {
            return .text(.conflict, Format.error(error))
        }
        return try .json(["done": done])
    }
}

/// The limits of the HTTP side: a slow or idle client, or very many, cannot hold the server.
public struct HTTPLimits: Sendable {
    /// Connections open at once; one more is closed at once.
    public var connections = 256
    /// A connection with no request (or an unfinished request head) for this long is closed.
    public var idleSeconds = 30
    /// Events queued for one event-stream page; a page that leaves it full for `behindSeconds` is closed and,
    /// reconnecting with `Last-Event-ID`, catches up from the store.
    public var queuedEventFrames = 256
    public var behindSeconds = 5.0
    /// A comment on an idle event stream, so a page that left is noticed.
    public var keepaliveSeconds = 15.0
    /// Events replayed to a page that connects without `Last-Event-ID`.
    public var replayedEvents = 500

    public init() {}
}

/// The request guard, once the server knows its port.
final class GuardBox: Sendable {
    private let value = Mutex<RequestGuard?>(nil)
    func set(_ requestGuard: RequestGuard) { value.withLock { $0 = requestGuard } }
    func get() throws -> RequestGuard {
        guard let requestGuard = value.withLock({ $0 }) else { throw HTTPError(.serviceUnavailable) }
        return requestGuard
    }
}

/// Applies `RequestGuard` to every route of its group: 401 without the token (the page itself goes to the
/// login form instead), 403 with the reason for a refused host or cross-origin change.
struct Guarded<Context: RequestContext>: RouterMiddleware {
    let box: GuardBox

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch try box.get().check(.init(request)) {
        case .allowed:
            return try await next(request, context)
        case .unauthenticated where request.method == .get && request.uri.path == "/":
            return Response(status: .seeOther, headers: [.location: "/login"])
        case .unauthenticated:
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"ionlab\"", .contentType: "text/plain"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "ionlab: this needs the dashboard token (ionlab dashboard token)\n")))
        case .forbidden(let reason):
            return .text(.forbidden, reason)
        }
    }
}

/// Headers on every response: the page runs only its own script, is framed by no one, and no response is
/// sniffed into another type. The referrer goes to this server only: with none at all, Chromium sends
/// `Origin: null` on the page's own form posts, which the guard would refuse.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "same-origin"
        return response
    }
}

extension RequestGuard.Request {
    init(_ request: Hummingbird.Request) {
        self.init(method: request.method.rawValue, host: request.head.authority, origin: request.headers[.origin],
                  authorization: request.headers[.authorization], sessionCookie: request.cookies[RequestGuard.cookieName]?.value,
                  csrfHeader: request.headers[.ionlabCSRF])
    }
}

extension HTTPField.Name {
    static let ionlabCSRF = HTTPField.Name(RequestGuard.csrfHeaderName)!
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}

extension Response {
    static func text(_ status: HTTPResponse.Status, _ line: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: line + "\n")))
    }

    static let jsonEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.timeIntervalSince1970)
        }
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: try jsonEncoder.encode(value))))
    }
}
