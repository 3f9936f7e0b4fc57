import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabWire

struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agents", abstract: "List agents with their connection and health.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let agents = try await AdminClient.with(paths: global.paths) { try await $0.agents() }
            if json {
                Terminal.line(JSONOutput.line(agents))
                return
            }
            let rows = agents.map { agent -> [String] in
                let health = agent.health
                let seen = agent.state == .connected ? "connected" : agent.state.rawValue + (agent.lastSeen.map { ", seen \(Table.ago($0))" } ?? "")
                return [
                    agent.name, seen,
                    health.map { String($0.bootID.prefix(8)) } ?? "-",
                    health.map { Table.duration($0.uptimeSeconds) } ?? "-",
                    health.map { $0.load.map { String(format: "%.2f", $0) }.joined(separator: " ") } ?? "-",
                    health.map { "\(Table.bytes($0.memoryAvailableBytes))/\(Table.bytes($0.memoryTotalBytes))" } ?? "-",
                    health.map { "\(Table.bytes($0.diskFreeBytes))/\(Table.bytes($0.diskTotalBytes))" } ?? "-",
                    health?.agentVersion ?? "-",
                ]
            }
            Terminal.line(Table.render(["NAME", "STATE", "BOOT", "UPTIME", "LOAD", "MEM FREE", "DISK FREE", "VERSION"], rows))
        }
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Show the controller's event stream.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: [.short, .long], help: "Keep streaming new events.")
    var follow = false

    @Flag(help: "Print one JSON object per line.")
    var json = false

    @Option(help: ArgumentHelp("Only events from this time on: a duration back from now (90s, 10m, 2h, 1d) or an ISO 8601 time.",
                               valueName: "T"))
    var since: String?

    @Option(help: "Only events after this sequence number.")
    var after: Int64 = 0

    @Option(help: "Only the events of this fleet and its VMs.")
    var fleet: String?

    func validate() throws {
        if let since { _ = try TimeArgument.parse(since) }
    }

    func run() async throws {
        let json = self.json
        try await reportingErrors {
            try await AdminClient.with(paths: global.paths) { client in
                let query = EventQuery(afterSeq: after, since: try since.map { try TimeArgument.parse($0) }, fleet: fleet, follow: follow)
                for try await event in try await client.events(query) {
                    Terminal.line(json ? JSONOutput.line(event) : Self.render(event))
                    Terminal.flush()
                }
            }
        }
    }

    static func render(_ event: Event) -> String {
        let subject = [event.fleet.map { "[\($0)]" }, event.agent, event.job].compactMap { $0 }.joined(separator: " ")
        return "\(Format.time(event.time))  #\(event.seq)  \(event.kind.rawValue)  \(subject.isEmpty ? "-" : subject)  \(Format.escaped(event.message))"
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List jobs and their results from the store.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Only this agent's jobs.")
    var agent: String?

    @Option(help: "At most this many, newest first.")
    var limit = 50

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let (agent, limit) = (self.agent, self.limit)
            let jobs = try await AdminClient.with(paths: global.paths) { try await $0.jobs(agent: agent, limit: limit) }
            if json {
                Terminal.line(JSONOutput.line(jobs))
                return
            }
            Terminal.line(Table.render(["JOB", "AGENT", "STARTED", "RESULT", "COMMAND"], jobs.map { job in
                [job.jobID, job.agent, Table.ago(job.startedAt), job.result?.summary ?? "running", job.argv.joined(separator: " ")]
            }))
        }
    }
}

/// A point in time given on the command line: "90s", "10m", "2h", "1d" back from now, or ISO 8601.
enum TimeArgument {
    static func parse(_ text: String, now: Date = Date()) throws -> Date {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value >= 0 {
            return now.addingTimeInterval(-value * scale)
        }
        for options in [ISO8601DateFormatter.Options.withInternetDateTime, [.withInternetDateTime, .withFractionalSeconds]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return date }
        }
        throw ValidationError("--since: expected a duration such as 90s, 10m, 2h or 1d, or an ISO 8601 time, found '\(text)'")
    }
}
