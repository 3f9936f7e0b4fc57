import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabController
import IonLabWire

/// The agent channel against OpenSSH on loopback, side by side in one run (docs/targets.md):
/// the round trip of `true`, and file throughput in both directions.
struct ChannelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel",
        abstract: "Exec round trip and file throughput: ionlab vs ssh, ssh ControlMaster and scp on 127.0.0.1.")

    @Option(help: "Round trips per method.")
    var runs = 40

    @Option(help: "Size of the transfer file in MiB.")
    var megabytes = 512

    @OptionGroup var output: ResultsOption

    func run() async throws {
        try Binaries.ensure()
        let work = try Workspace.create()
        var processes: [Shell.Child] = []
        defer { Workspace.tearDown(work, processes) }

        print("starting an ionlab controller and agent, and an sshd, on 127.0.0.1…")
        let lab = try await LocalLab.start(in: work, processes: &processes)
        let ssh = try SSHServer.start(in: work, processes: &processes)
        defer { ssh.stop() }
        try await Task.sleep(for: .milliseconds(300))

        // Round trips.
        var report = Report()
        let ionlab = Binaries.path("ionlab")
        let baseline = try measure(runs) { Shell.run("/bin/true", []).status }
        let startup = try measure(runs) { Shell.run(ionlab, ["--help"]).status }
        let cli = try measure(runs) { Shell.run(ionlab, ["exec", "bench", "--", "true"], environment: lab.environment).status }
        let channel = try await lab.channelRoundTrips(count: runs * 5)
        let fresh = try measure(max(10, runs / 2)) { Shell.run("/usr/bin/ssh", ssh.arguments + ["true"]).status }
        let master = try ssh.startMaster(processes: &processes)
        let multiplexed = try measure(runs) { Shell.run("/usr/bin/ssh", master + ["true"]).status }
        report.row("baseline: start /bin/true", baseline)
        report.row("baseline: start the CLI (`ionlab --help`)", startup)
        report.row("exec `true`, ionlab CLI (`ionlab exec bench -- true`)", cli)
        report.row("exec `true`, ionlab channel (one admin connection)", channel)
        report.row("exec `true`, fresh `ssh localhost true`", fresh)
        report.row("exec `true`, ssh ControlMaster", multiplexed)

        // Throughput.
        let blob = "\(work)/blob"
        _ = Shell.run("/bin/sh", ["-c", "head -c \(megabytes)M /dev/urandom > \(blob)"])
        let bytes = Double(megabytes) * 1_048_576
        func rate(_ seconds: Double) -> Double { bytes / seconds / 1_048_576 }
        let ionlabUp = try Shell.time { try check(Shell.run(ionlab, ["cp", blob, "bench:\(work)/up.ionlab"], environment: lab.environment)) }
        let ionlabDown = try Shell.time { try check(Shell.run(ionlab, ["cp", "bench:\(blob)", "\(work)/down.ionlab"], environment: lab.environment)) }
        let scpUp = try Shell.time { try check(Shell.run("/usr/bin/scp", ssh.scpArguments + [blob, "\(ssh.target):\(ssh.home)/up.scp"])) }
        let scpDown = try Shell.time { try check(Shell.run("/usr/bin/scp", ssh.scpArguments + ["\(ssh.target):\(blob)", "\(work)/down.scp"])) }

        print("")
        print(report.render())
        print("")
        print(String(format: "file %d MiB      ionlab cp up %6.0f MiB/s   down %6.0f MiB/s", megabytes, rate(ionlabUp), rate(ionlabDown)))
        print(String(format: "                  scp       up %6.0f MiB/s   down %6.0f MiB/s", rate(scpUp), rate(scpDown)))
        print("")
        print("targets (docs/targets.md):")
        verdict("ionlab exec ≥ 20× faster than fresh ssh (CLI)", fresh.median / cli.median, 20)
        verdict("ionlab exec ≥ 20× faster than fresh ssh (channel)", fresh.median / channel.median, 20)
        verdict("ionlab exec faster than ControlMaster (CLI)", multiplexed.median / cli.median, 1)
        verdict("ionlab exec faster than ControlMaster (channel)", multiplexed.median / channel.median, 1)
        verdict("ionlab cp up ≥ scp", rate(ionlabUp) / rate(scpUp), 1)
        verdict("ionlab cp down ≥ scp", rate(ionlabDown) / rate(scpDown), 1)
        try output.record([
            "cli_help_ms": startup.median * 1000, "cli_exec_ms": cli.median * 1000, "channel_exec_ms": channel.median * 1000,
            "ssh_fresh_ms": fresh.median * 1000, "ssh_master_ms": multiplexed.median * 1000,
            "cp_up_mib_s": rate(ionlabUp), "cp_down_mib_s": rate(ionlabDown), "scp_up_mib_s": rate(scpUp), "scp_down_mib_s": rate(scpDown),
        ])
    }

    private func measure(_ count: Int, _ body: () throws -> Int32) throws -> Samples {
        var samples = Samples()
        _ = try body()  // warm-up
        for _ in 0..<count {
            var status: Int32 = 0
            samples.add(try Shell.time { status = try body() })
            guard status == 0 else { throw BenchError("a measured command failed with status \(status)") }
        }
        return samples
    }

    private func check(_ result: Shell.Result) throws {
        guard result.status == 0 else { throw BenchError("command failed: \(result.output)") }
    }

    private func verdict(_ what: String, _ ratio: Double, _ target: Double) {
        print(String(format: "  %@ %-52@ %7.2f× (target %g×)", ratio >= target ? "PASS" : "MISS", what, ratio, target))
    }
}

/// Timing rows in milliseconds.
struct Report {
    private var rows: [(String, Samples)] = []
    mutating func row(_ label: String, _ samples: Samples) { rows.append((label, samples)) }

    func render() -> String {
        var lines = ["round trip                                                 median      p90     mean   (ms, n)"]
        for (label, samples) in rows {
            lines.append(String(format: "%-56@ %8.2f %8.2f %8.2f   (%d)", label, samples.median * 1000, samples.p90 * 1000,
                                samples.mean * 1000, samples.values.count))
        }
        return lines.joined(separator: "\n")
    }
}

/// A controller and one agent named `bench`, both release binaries, in a scratch state directory.
struct LocalLab {
    let stateDir: String
    var environment: [String: String] { ["IONLAB_STATE_DIR": stateDir] }

    static func start(in work: String, processes: inout [Shell.Child]) async throws -> LocalLab {
        let lab = LocalLab(stateDir: "\(work)/controller")
        let ionlab = Binaries.path("ionlab")
        let port = 20_000 + Int(getpid() % 10_000)
        guard Shell.run(ionlab, ["init", "--listen", "127.0.0.1:\(port)"], environment: lab.environment).status == 0 else {
            throw BenchError("ionlab init failed")
        }
        processes.append(try Shell.background(ionlab, ["serve", "--log-level", "warning"], environment: lab.environment, log: "\(work)/controller.log"))
        try await waitFor("the controller") { Shell.run(ionlab, ["agents"], environment: lab.environment).status == 0 }
        guard Shell.run(ionlab, ["token", "create", "bench", "--output", "\(work)/bench.json"], environment: lab.environment).status == 0 else {
            throw BenchError("token create failed")
        }
        processes.append(try Shell.background(Binaries.path("ionlab-agent"), ["--config", "\(work)/bench.json", "--state-dir", "\(work)/agent"],
                                              log: "\(work)/agent.log"))
        try await waitFor("the agent") { Shell.run(ionlab, ["agents"], environment: lab.environment).output.contains("connected") }
        return lab
    }

    /// Round trips over one admin connection: what the controller's own workflows pay per command.
    func channelRoundTrips(count: Int) async throws -> Samples {
        try await AdminClient.with(paths: StatePaths(directory: stateDir)) { client in
            var samples = Samples()
            for index in 0...count {
                let start = ContinuousClock.now
                let job = try await client.exec(ExecSpec(jobID: Format.newJobID(), argv: ["true"]), on: "bench")
                while true {
                    if case .finished(let result) = try await job.next() {
                        guard result.succeeded else { throw BenchError("true failed: \(result.summary)") }
                        break
                    }
                }
                job.close()
                if index > 0 { samples.add((ContinuousClock.now - start).seconds) }
            }
            return samples
        }
    }
}

/// A private sshd on a loopback port with its own host key and a fresh client key, logging in as a throwaway
/// user whose shell is dash with no rc files: OpenSSH's best case. (As root, bash sources ~/.bashrc for every
/// ssh command, which here costs over 100 ms and would flatter ionlab.)
struct SSHServer {
    static let user = "ionlabbench"
    let port: Int
    let key: String
    let work: String

    var home: String { "\(work)/home" }
    var target: String { "\(Self.user)@127.0.0.1" }
    var common: [String] {
        ["-F", "/dev/null", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
    }
    var arguments: [String] { common + ["-p", "\(port)", target] }
    var scpArguments: [String] { common + ["-P", "\(port)", "-q"] }

    static func start(in work: String, processes: inout [Shell.Child]) throws -> SSHServer {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") else {
            throw BenchError("sshd is missing: install openssh-server (scripts/install-deps.sh does)")
        }
        let port = 30_000 + Int(getpid() % 10_000)
        let user = Self.user
        let server = SSHServer(port: port, key: "\(work)/client_key", work: work)
        for (path, type) in [("\(work)/host_key", "ed25519"), (server.key, "ed25519")] {
            guard Shell.run("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", "", "-f", path]).status == 0 else {
                throw BenchError("ssh-keygen failed")
            }
        }
        try FileManager.default.copyItem(atPath: "\(server.key).pub", toPath: "\(work)/authorized_keys")
        if Shell.run("/usr/bin/id", [user]).status != 0 {
            guard Shell.run("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/bin/sh", user]).status == 0 else {
                throw BenchError("cannot create the benchmark user \(user) (run as root)")
            }
        }
        // "*" instead of useradd's "!": no password, but not locked, so key logins work.
        _ = Shell.run("/usr/sbin/usermod", ["-p", "*", "--home", server.home, user])
        try FileManager.default.createDirectory(atPath: server.home, withIntermediateDirectories: true)
        _ = Shell.run("/bin/chown", [user, server.home])
        chmod(work, 0o755)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let config = """
            ListenAddress 127.0.0.1:\(port)
            HostKey \(work)/host_key
            AuthorizedKeysFile \(work)/authorized_keys
            PidFile \(work)/sshd.pid
            PermitRootLogin no
            AllowUsers \(user)
            PasswordAuthentication no
            UsePAM no
            StrictModes no
            Subsystem sftp internal-sftp
            """
        try config.write(toFile: "\(work)/sshd_config", atomically: true, encoding: .utf8)
        // sshd daemonizes: its own fd cleanup would confuse Foundation's child monitoring if it stayed our child.
        guard Shell.run("/usr/sbin/sshd", ["-f", "\(work)/sshd_config", "-E", "\(work)/sshd.log"]).status == 0 else {
            throw BenchError("sshd did not start: \((try? String(contentsOfFile: "\(work)/sshd.log", encoding: .utf8)) ?? "")")
        }
        for _ in 0..<50 where Shell.run("/usr/bin/ssh", server.arguments + ["true"]).status != 0 { usleep(100_000) }
        guard Shell.run("/usr/bin/ssh", server.arguments + ["true"]).status == 0 else {
            throw BenchError("cannot ssh to the private sshd: \((try? String(contentsOfFile: "\(work)/sshd.log", encoding: .utf8)) ?? "")")
        }
        return server
    }

    /// Stops the daemon, by the PID it wrote.
    func stop() {
        if let text = try? String(contentsOfFile: "\(work)/sshd.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGTERM)
        }
    }

    /// Starts a ControlMaster and returns the arguments that reuse it.
    func startMaster(processes: inout [Shell.Child]) throws -> [String] {
        let socket = "\(work)/control.sock"
        processes.append(try Shell.background("/usr/bin/ssh", arguments + ["-M", "-S", socket, "-N"], log: "\(work)/master.log"))
        for _ in 0..<50 where !FileManager.default.fileExists(atPath: socket) { usleep(100_000) }
        return arguments + ["-S", socket]
    }
}

func waitFor(_ what: String, _ condition: () -> Bool) async throws {
    for _ in 0..<200 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError("timed out waiting for \(what)")
}
