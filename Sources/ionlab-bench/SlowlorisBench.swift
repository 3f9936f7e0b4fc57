import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabController
import IonLabPKI
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Enrolled agents at work while a crowd of slow, unauthenticated peers presses on the listener, as any
/// guest could: do the agents' commands still run, and at what cost? The attackers reconnect as soon as the
/// controller drops them, for the whole attack.
struct SlowlorisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slowloris",
        abstract: "Agents running commands while many slow unauthenticated connections press on the controller.")

    @Option(help: "Enrolled agents that keep running commands.")
    var agents = 100

    @Option(help: "Slow unauthenticated connections kept open (reopened as the controller drops them).")
    var attackers = 1000

    @Option(help: "Seconds of the baseline and of the attack.")
    var seconds: Double = 30

    func validate() throws {
        guard agents > 0, attackers > 0, seconds > 0 else { throw ValidationError("--agents, --attackers and --seconds must be positive") }
    }

    func run() async throws {
        try Binaries.ensure()
        try ProcStats.checkFileLimit(needed: 2 * (agents + attackers) + 1024)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-bench-slowloris-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        print("starting an ionlab controller on 127.0.0.1 (default limits: 256 unauthenticated connections, 10 s to authenticate)…")
        let controller = try await ScaleController.start(in: work, heartbeatSeconds: 10)
        defer { controller.stop() }
        let fleet = try SimulatedFleet(endpoint: controller.endpoint, pin: controller.pin, heartbeatSeconds: 10,
                                       group: MultiThreadedEventLoopGroup.singleton)
        defer { fleet.stop() }
        let agents = self.agents
        try await AdminClient.with(paths: controller.paths) { admin in await fleet.grow(to: agents, concurrency: 32, admin: admin) }
        _ = try await controller.waitForConnected(agents, fleet: fleet)
        let names = (0..<agents).map(SimulatedFleet.name)
        print("\(agents) agents connected; \(seconds) s of commands without an attack…")

        let before = try controller.sample()
        let quiet = try await Workload.run(on: names, for: seconds, paths: controller.paths)
        let calm = try controller.sample()

        print("\(attackers) slow unauthenticated connections, reopened as they are dropped; \(seconds) s of commands…")
        let crowd = Crowd(endpoint: controller.endpoint, pin: controller.pin, size: attackers)
        crowd.start()
        try await Task.sleep(for: .seconds(2))
        let attacked = try await Workload.run(on: names, for: seconds, paths: controller.paths, alsoEnroll: 10, fleet: fleet)
        let pressed = try controller.sample()
        crowd.stop()
        let stats = crowd.stats

        print("")
        print("phase      commands  failed  median ms  p90 ms   max ms  controller RSS MiB  controller CPU")
        for (name, load, start, end) in [("baseline", quiet, before, calm), ("attacked", attacked, calm, pressed)] {
            print(String(format: "%-9@  %8d  %6d  %9.2f  %6.2f  %7.1f  %18.1f  %13.0f%%", name as NSString, load.latencies.values.count,
                         load.failed, 1000 * load.latencies.median, 1000 * load.latencies.p90, 1000 * (load.latencies.values.max() ?? .nan),
                         Double(end.rssKB) / 1024, 100 * (end.cpuSeconds - start.cpuSeconds) / (end.time - start.time).seconds))
        }
        print("")
        print("attackers: \(stats.opened) connections opened, \(stats.dropped) dropped by the controller, \(stats.refusedAtConnect) refused at connect")
        if let enroll = attacked.enrollSeconds {
            print(String(format: "10 new agents enrolled and connected during the attack in %.2f s", enroll))
        }
        if let error = attacked.firstError ?? quiet.firstError { print("first failure: \(error)") }
        let ok = attacked.failed == 0 && attacked.enrollSeconds != nil
        print("\(ok ? "PASS" : "MISS") agents keep working under \(attackers) slow unauthenticated connections")
    }
}

/// Commands on every agent in turn, over one admin connection, as fast as they come back.
struct Workload {
    var latencies = Samples()
    var failed = 0
    var firstError: String?
    var enrollSeconds: Double?

    static func run(on names: [String], for seconds: Double, paths: StatePaths, alsoEnroll newcomers: Int = 0,
                    fleet: SimulatedFleet? = nil) async throws -> Workload {
        try await AdminClient.with(paths: paths) { admin in
            var load = Workload()
            let enroll = Task { () -> Double? in
                guard newcomers > 0, let fleet else { return nil }
                let start = ContinuousClock.now
                let target = names.count + newcomers
                await fleet.grow(to: target, concurrency: newcomers, admin: admin)
                while fleet.connected < target {
                    guard ContinuousClock.now - start < .seconds(60) else { return nil }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return (ContinuousClock.now - start).seconds
            }
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            var index = 0
            while ContinuousClock.now < deadline {
                let start = ContinuousClock.now
                do {
                    let job = try await admin.exec(ExecSpec(jobID: Format.newJobID(), argv: ["true"]), on: names[index % names.count])
                    defer { job.close() }
                    while true {
                        if case .finished(let result) = try await job.next() {
                            if !result.succeeded { throw BenchError(result.summary) }
                            break
                        }
                    }
                    load.latencies.add((ContinuousClock.now - start).seconds)
                } catch {
                    load.failed += 1
                    if load.firstError == nil { load.firstError = Format.error(error) }
                }
                index += 1
            }
            load.enrollSeconds = await enroll.value
            return load
        }
    }
}

/// The attackers: each slot holds one slow connection and opens another as soon as it is dropped. A third
/// never start TLS; a third finish TLS, say hello and go silent; a third send a frame header and then one
/// byte a second.
final class Crowd: @unchecked Sendable {
    let endpoint: Endpoint
    let pin: CAPin
    let size: Int
    private let counters = NIOLockedValueBox((opened: 0, dropped: 0, refusedAtConnect: 0))
    private let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])

    init(endpoint: Endpoint, pin: CAPin, size: Int) {
        self.endpoint = endpoint
        self.pin = pin
        self.size = size
    }

    var stats: (opened: Int, dropped: Int, refusedAtConnect: Int) { counters.withLockedValue { $0 } }

    func start() {
        let started = (0..<size).map { slot in Task { await self.hold(slot: slot) } }
        tasks.withLockedValue { $0 = started }
    }

    func stop() {
        for task in tasks.withLockedValue({ $0 }) { task.cancel() }
    }

    private func hold(slot: Int) async {
        while !Task.isCancelled {
            do {
                let channel = try await open(tls: slot % 3 != 0)
                counters.withLockedValue { $0.opened += 1 }
                await stall(channel, style: slot % 3)
                if !Task.isCancelled { counters.withLockedValue { $0.dropped += 1 } }
                channel.close(promise: nil)
            } catch {
                counters.withLockedValue { $0.refusedAtConnect += 1 }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private func open(tls: Bool) async throws -> Channel {
        let pin = self.pin
        let context = try TLSSetup.clientContext(identity: nil)
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                guard tls else { return channel.eventLoop.makeSucceededVoidFuture() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try TLSSetup.clientHandler(context: context, pin: pin))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
    }

    /// Keeps the connection as slow as its style says, until the controller closes it.
    private func stall(_ channel: Channel, style: Int) async {
        if style == 1, let hello = try? MessageCoding.encode(AgentControl.hello(Hello(role: .agent, software: "slowloris"))) {
            var out = ByteBuffer()
            try? FrameEncoder().encode(data: Frame(kind: .message, stream: 0, payload: hello), out: &out)
            try? await channel.writeAndFlush(out)
        }
        if style == 2 {
            var header = ByteBuffer()
            header.writeInteger(UInt32(60_000))
            header.writeInteger(FrameKind.message.rawValue)
            header.writeInteger(UInt32(0))
            try? await channel.writeAndFlush(header)
        }
        while channel.isActive, !Task.isCancelled {
            if style == 2 { try? await channel.writeAndFlush(ByteBuffer(bytes: [0x20])) }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
