import Foundation
import IonLabAdminAPI
import NIOCore
@testable import IonLabDashboard
import Testing

/// Who may do what over the dashboard's HTTP side, decided without a server: every way in, and the attacks
/// each refusal is for.
@Suite struct RequestGuardTests {
    let token = DashboardToken(value: String(repeating: "ab", count: 32))
    var requestGuard: RequestGuard { RequestGuard(token: token, host: "127.0.0.1", port: 8080) }

    func request(method: String = "GET", host: String? = "127.0.0.1:8080", origin: String? = nil, bearer: String? = nil,
                 cookie: String? = nil, csrf: String? = nil) -> RequestGuard.Request {
        RequestGuard.Request(method: method, host: host, origin: origin, authorization: bearer.map { "Bearer \($0)" },
                             sessionCookie: cookie, csrfHeader: csrf)
    }

    @Test func readingNeedsTheTokenOrTheSessionCookie() {
        #expect(requestGuard.check(request()) == .unauthenticated)
        #expect(requestGuard.check(request(bearer: token.value)) == .allowed)
        #expect(requestGuard.check(request(bearer: String(repeating: "0", count: 64))) == .unauthenticated)
        #expect(requestGuard.check(request(bearer: String(token.value.dropLast()))) == .unauthenticated)
        #expect(requestGuard.check(request(cookie: requestGuard.sessionValue)) == .allowed)
        // The cookie is not the token, and the token is not a cookie.
        #expect(requestGuard.sessionValue != token.value)
        #expect(requestGuard.check(request(cookie: token.value)) == .unauthenticated)
        #expect(requestGuard.check(request(bearer: requestGuard.sessionValue)) == .unauthenticated)
    }

    @Test func aChangeByCookieMustComeFromThisOriginWithTheCSRFHeader() {
        let cookie = requestGuard.sessionValue, csrf = requestGuard.csrfValue
        #expect(requestGuard.check(request(method: "POST", origin: "http://127.0.0.1:8080", cookie: cookie, csrf: csrf)) == .allowed)
        // Another port of the same host is the same site: its form posts carry the SameSite=Strict cookie.
        for origin in ["http://127.0.0.1:9999", "http://localhost:8080", "null", "https://127.0.0.1:8080"] {
            let verdict = requestGuard.check(request(method: "POST", origin: origin, cookie: cookie, csrf: csrf))
            #expect(verdict == .forbidden("a change must come from this server's own page (Origin: \(origin))"), "\(origin)")
        }
        #expect(requestGuard.check(request(method: "POST", cookie: cookie, csrf: csrf))
                == .forbidden("a change must come from this server's own page (Origin: none)"))
        // Every method but GET and HEAD is a change.
        for method in ["PUT", "DELETE", "PATCH", "post"] {
            #expect(requestGuard.check(request(method: method, cookie: cookie, csrf: csrf))
                    == .forbidden("a change must come from this server's own page (Origin: none)"), "\(method)")
        }
        #expect(requestGuard.check(request(method: "HEAD", cookie: cookie)) == .allowed)
        for wrong in [nil, "", String(csrf.dropLast()), cookie] {
            #expect(requestGuard.check(request(method: "POST", origin: "http://127.0.0.1:8080", cookie: cookie, csrf: wrong))
                    == .forbidden("a change must carry the page's X-IonLab-CSRF header"), "\(wrong ?? "nil")")
        }
        // A bearer token is never sent by a browser on its own: no other page can make a request carry it.
        #expect(requestGuard.check(request(method: "POST", origin: "http://evil.example", bearer: token.value)) == .allowed)
    }

    @Test func anUnknownHostIsRefusedWhateverItCarries() {
        // DNS rebinding: a name the attacker controls, resolved to 127.0.0.1.
        for host in ["evil.example:8080", "127.0.0.1:8081", "127.0.0.1", "", "127.0.0.1:8080\u{1b}[2J"] {
            let verdict = requestGuard.check(request(host: host, bearer: token.value))
            guard case .forbidden(let reason) = verdict else { Issue.record("\(host): \(verdict)"); continue }
            #expect(reason.hasPrefix("this server does not answer to the host"))
            #expect(!reason.contains("\u{1b}"), "a peer's header reaches the log escaped")
        }
        #expect(requestGuard.check(request(host: nil, bearer: token.value)) != .allowed)
        for host in ["localhost:8080", "[::1]:8080", "LOCALHOST:8080"] {
            #expect(requestGuard.check(request(host: host, bearer: token.value)) == .allowed, "\(host)")
        }
        let wide = RequestGuard(token: token, host: "10.1.2.3", port: 80)
        #expect(wide.check(request(host: "localhost:80", bearer: token.value)) != .allowed)
        #expect(wide.check(request(host: "10.1.2.3:80", bearer: token.value)) == .allowed)
    }

    @Test func theLoginFormMustComeFromThisServersPage() {
        #expect(requestGuard.checkLogin(request(method: "POST", origin: "http://127.0.0.1:8080")) == .allowed)
        #expect(requestGuard.checkLogin(request(method: "POST", origin: "http://127.0.0.1:9999")) == .forbidden("a login must come from this server's own page"))
        #expect(requestGuard.checkLogin(request(method: "POST")) == .forbidden("a login must come from this server's own page"))
    }

    /// One frame per event; a message with newlines (a guest's output) stays one `data:` line.
    @Test func eventStreamFramesAreOneLineOfJSONEach() throws {
        let event = Event(seq: 42, kind: .stepFailed, agent: "vm1", message: "line one\nline two\r\n\ndata: forged")
        let frame = String(buffer: try EventStreamFormat.frame(event))
        #expect(frame.hasPrefix("id: 42\ndata: {"))
        #expect(frame.hasSuffix("}\n\n"))
        #expect(frame.dropLast(2).split(separator: "\n").count == 2, "\(frame)")
        #expect(!frame.contains("\r"))
    }

    /// A timeline's boot phases end at each milestone; one still booting has an open bar from the last.
    @Test func bootPhasesEndAtMilestones() {
        let timeline = BootTimeline(milestones: [.init(name: "kernel", seconds: 3), .init(name: "ready", seconds: 40)])
        #expect(TimelineBar.bootPhases(timeline, booting: false) == [
            TimelineBar(name: "kernel", kind: .boot, start: 0, end: 3, outcome: .done),
            TimelineBar(name: "ready", kind: .boot, start: 3, end: 40, outcome: .done),
        ])
        #expect(TimelineBar.bootPhases(timeline, booting: true).last == TimelineBar(name: "booting", kind: .boot, start: 40, end: nil, outcome: .running))
    }
}
