import Foundation
import Hummingbird
import IonLabAdminAPI

/// `serve --http HOST:PORT`: the controller's HTTP side. Every route needs the dashboard token as a bearer
/// token; `/metrics` is Prometheus' text format.
public struct DashboardServer: Sendable {
    public let host: String
    public let port: Int
    let token: DashboardToken
    let metrics: LabMetrics
    let snapshot: @Sendable () async -> LabMetrics.Snapshot

    public init(host: String, port: Int, token: DashboardToken, metrics: LabMetrics,
                snapshot: @escaping @Sendable () async -> LabMetrics.Snapshot) {
        self.host = host
        self.port = port
        self.token = token
        self.metrics = metrics
        self.snapshot = snapshot
    }

    /// Serves until the task is cancelled; throws if the address cannot be bound.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router()
        router.add(middleware: BearerToken(token: token))
        router.get("metrics") { [metrics, snapshot] _, _ -> Response in
            let body = metrics.scrape(await snapshot())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ionlab"),
                              onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) })
        try await app.run()
    }
}

/// Refuses a request without `Authorization: Bearer TOKEN` (401, and nothing of the page).
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: DashboardToken

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), token.matches(header.dropFirst(7)) else {
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"ionlab\"", .contentType: "text/plain"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "ionlab: this needs the dashboard token (ionlab dashboard token)\n")))
        }
        return try await next(request, context)
    }
}
