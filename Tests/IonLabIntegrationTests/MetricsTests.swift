import Foundation
import Testing

/// `ionlab serve --http`: Prometheus metrics at /metrics, scraped during a fleet run on libvirt test hosts,
/// parsed by Prometheus' own Python parser (prometheus_client, Debian's python3-prometheus-client), and held
/// to what `ionlab agents`, `jobs` and `events` say.
@Suite struct MetricsTests {
    /// One sample: the metric's name, its labels, its value.
    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// GETs `url` with curl: the HTTP status and the body.
    static func get(_ url: String, token: String?, origin: String? = nil) async -> (status: Int, body: String) {
        var arguments = ["-s", "-w", "\n%{http_code}", url]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let origin { arguments += ["-H", "Origin: \(origin)"] }
        let result = await Lab.runProgram("/usr/bin/curl", arguments, directory: "/")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// Parses the exposition text with prometheus_client's parser; every sample, flattened.
    static func parse(_ text: String) async throws -> [Sample] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-metrics-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try text.write(toFile: "\(directory)/metrics.txt", atomically: true, encoding: .utf8)
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            samples = [{"name": s.name, "labels": s.labels, "value": s.value}
                       for family in text_string_to_metric_families(open("metrics.txt").read()) for s in family.samples]
            json.dump(samples, sys.stdout)
            """
        let result = await Lab.runProgram("/usr/bin/python3", ["-c", script], directory: directory)
        try #require(result.status == 0, "the Prometheus parser refused the page: \(result.stderr)")
        return try JSONDecoder().decode([Sample].self, from: Data(result.stdout.utf8))
    }

    /// Whether `up` has returned, set from its task.
    final class Ended: @unchecked Sendable {
        private let lock = NSLock()
        private var ended = false
        func now() { lock.withLock { ended = true } }
        var yet: Bool { lock.withLock { ended } }
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    @Test func metricsScrapedDuringAFleetRunAgreeWithTheStore() async throws {
        let port = try Lab.freePort()
        let fleet = try await FleetLab()
        try await fleet.start(controllerArguments: ["--http", "127.0.0.1:\(port)"])
        let (base, token) = try await fleet.lab.httpSide(port: port)
        let url = "\(base)/metrics"
        await #expect(Self.get(url, token: String(repeating: "0", count: 64)).status == 401)
        #expect(token.count == 64)
        let mode = try FileManager.default.attributesOfItem(atPath: "\(fleet.lab.stateDir)/dashboard.token")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // The slow step lasts at least 3 s (above the histogram's 2 s bucket) and until the test has scraped:
        // it waits for a file the test writes then, so the run cannot end before the scrape however slow it is.
        let gate = "\(fleet.lab.stateDir)/scraped"
        defer { try? Data().write(to: URL(fileURLWithPath: gate)) }
        let spec = try fleet.spec("mx", FleetTests.header("mx", backend: "big") + """
            count: 2
            workflow:
              - name: fine
                exec: ["true"]
              - name: slow
                exec: ["sh", "-c", "sleep 3; until [ -e \(gate) ]; do sleep 0.1; done"]
              - name: breaks
                exec: ["sh", "-c", "exit 3"]
            """)
        let ended = Ended()
        let up = Task.detached { [fleet] in
            let result = await fleet.lab.run(["up", spec])
            ended.now()
            return (status: result.status, stdout: result.stdout)
        }
        // During the run: the page parses, and the fleet's agents show up as connected before `up` has ended.
        try await eventually("a scrape showing the fleet's agents while it runs", timeout: 60) {
            let page = await Self.get(url, token: token)
            guard page.status == 200, let samples = try? await Self.parse(page.body) else { return false }
            return (Self.value(samples, "ionlab_agents", ["state": "connected"]) ?? 0) >= 2
        }
        #expect(!ended.yet, "the scrape came only after the run")
        try Data().write(to: URL(fileURLWithPath: gate))
        let result = await up.value
        #expect(result.status == 1, "the fleet's last step fails on purpose: \(result.stdout)")

        let page = await Self.get(url, token: token)
        #expect(page.status == 200)
        let samples = try await Self.parse(page.body)
        let agents = try await #require(JSONSerialization.jsonObject(with: Data(fleet.lab.run(["agents", "--json"]).stdout.utf8)) as? [[String: Any]])
        let connected = agents.filter { $0["state"] as? String == "connected" }.count
        #expect(Self.value(samples, "ionlab_agents", ["state": "connected"]) == Double(connected))
        let heartbeats = samples.filter { $0.name == "ionlab_agent_heartbeat_age_seconds" }
        #expect(Set(heartbeats.map { $0.labels["agent"] ?? "" }) == Set(agents.compactMap { $0["state"] as? String == "connected" ? $0["name"] as? String : nil }))

        let jobs = try await #require(JSONSerialization.jsonObject(with: Data(fleet.lab.run(["jobs", "--json", "--limit", "1000"]).stdout.utf8)) as? [[String: Any]])
        let exits = jobs.compactMap { ($0["result"] as? [String: Any])?["exitCode"] as? Int }
        #expect(Self.value(samples, "ionlab_jobs_total", ["result": "ok"]) == Double(exits.filter { $0 == 0 }.count))
        #expect(Self.value(samples, "ionlab_jobs_total", ["result": "failed"]) == Double(exits.filter { $0 != 0 }.count))
        #expect(exits.filter { $0 == 3 }.count == 2, "each VM ran the failing step once: \(exits)")

        let events = await fleet.events(fleet: "mx")
        for kind in ["step.done", "step.failed"] {
            let stored = events.filter { $0["kind"] as? String == kind }.count
            #expect(Self.value(samples, "ionlab_events_total", ["kind": kind]) == Double(stored), "\(kind)")
        }
        let ready = events.filter { $0["kind"] as? String == "vm.ready" }.count
        #expect(ready == 2 && Self.value(samples, "ionlab_vm_phase_seconds_count", ["phase": "ready"]) == Double(ready))
        // libvirt's statistics of each VM (the test driver reports its state only), gone with the VM.
        for vm in ["mx-1", "mx-2"] { #expect(Self.value(samples, "ionlab_vm_running", ["vm": vm, "backend": "big"]) == 1, "\(vm)") }
        await #expect(fleet.lab.run(["down", "mx"]).status == 0)
        let after = try await Self.parse(Self.get(url, token: token).body)
        #expect(!after.contains { $0.name.hasPrefix("ionlab_vm_running") && ["mx-1", "mx-2"].contains($0.labels["vm"] ?? "") })
        // The slow step is in the histogram of steps that ended well, above the 2 s bucket where the fast ones are.
        let done = Self.value(samples, "ionlab_step_duration_seconds_count", ["outcome": "done"]) ?? 0
        let underTwo = Self.value(samples, "ionlab_step_duration_seconds_bucket", ["outcome": "done", "le": "2.0"]) ?? -1
        #expect(done == 4 && underTwo == 2, "\(samples.filter { $0.name.hasPrefix("ionlab_step") })")
    }
}

extension Lab {
    /// Waits until the HTTP side of a controller started with `--http 127.0.0.1:PORT` answers (401 without a
    /// token), and returns its base URL and the dashboard's token.
    func httpSide(port: Int) async throws -> (url: String, token: String) {
        let url = "http://127.0.0.1:\(port)"
        try await eventually("the HTTP side", timeout: 20) { await MetricsTests.get("\(url)/metrics", token: nil).status == 401 }
        return await (url, run(["dashboard", "token"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
