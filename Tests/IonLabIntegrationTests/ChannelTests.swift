import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import Testing

/// The controller/agent channel with real `ionlab serve` and `ionlab-agent` processes over 127.0.0.1.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ChannelTests {
    @Test func execStreamsBothOutputsAndReturnsTheExitCode() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let result = await lab.run(["exec", "agent1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"])
        #expect(result.status == 7)
        #expect(result.stdout == "out\n")
        #expect(result.stderr == "err\n")
        // Signals come back as 128+N, like a shell reports them.
        let killed = await lab.run(["exec", "agent1", "--", "sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + 15)
    }

    @Test func timeoutKillsTheWholeProcessGroup() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let started = Date()
        let result = await lab.run(["exec", "agent1", "--timeout", "2", "--", "sh", "-c", "sleep 100 & sleep 100"])
        #expect(result.status == 124)
        #expect(result.stderr.contains("timed out after 2"))
        #expect(Date().timeIntervalSince(started) < 10)
        // The background sleep shares the group, so it dies too; allow the SIGKILL grace period.
        try await eventually("every `sleep 100` to be gone", timeout: 30) { ProcessTable.commandLines(["sleep", "100"]).isEmpty }
    }

    @Test func interruptingTheCLICancelsTheRemoteJob() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let cli = try lab.spawnCLI(["exec", "agent1", "--", "sh", "-c", "sleep 101 & sleep 101"], log: "cancel.log")
        try await eventually("the job to start", timeout: 30) { !ProcessTable.commandLines(["sleep", "101"]).isEmpty }
        kill(cli.processIdentifier, SIGINT)
        #expect(try await lab.exitStatus(of: cli) == 130)
        #expect(lab.log("cancel.log").contains("cancelled; process group killed"))
        try await eventually("every `sleep 101` to be gone", timeout: 30) { ProcessTable.commandLines(["sleep", "101"]).isEmpty }
    }

    @Test func stdinEnvAndWorkingDirectoryReachTheCommand() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let result = await lab.run(["exec", "agent1", "--env", "GREETING=hello there", "--cwd", "/tmp", "--", "sh", "-c", "echo \"$GREETING\" $(pwd)"])
        #expect(result.status == 0)
        #expect(result.stdout == "hello there /tmp\n")
        let piped = await lab.run(["exec", "agent1", "--stdin", "--", "sh", "-c", "tr a-z A-Z; echo done >&2"], stdin: "hello\nworld\n")
        #expect(piped.stdout == "HELLO\nWORLD\n")
        #expect(piped.stderr == "done\n")
        await #expect(lab.run(["exec", "agent1", "-i", "--", "cat"], stdin: "as docker spells it\n").stdout == "as docker spells it\n")
        let missing = await lab.run(["exec", "agent1", "--", "/no/such/program"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("No such file or directory"))
    }

    @Test func treesOf200MBCrossBothWaysIntact() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let source = "\(lab.directory)/tree"
        try TreeFixture.make(at: source, totalBytes: 200 << 20)
        let remote = "\(lab.directory)/remote"
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)

        let up = await lab.run(["cp", "-r", source, "agent1:\(remote)"])
        #expect(up.status == 0, "\(up.stderr)")
        let back = "\(lab.directory)/back"
        let down = await lab.run(["cp", "-r", "agent1:\(remote)/tree", back])
        #expect(down.status == 0, "\(down.stderr)")

        let original = try await TreeFixture.manifest(source)
        #expect(original.count > 10)
        await #expect(try TreeFixture.manifest("\(remote)/tree") == original)
        await #expect(try TreeFixture.manifest(back) == original)
    }

    @Test func singleFilesAndDestinationRules() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let file = "\(lab.directory)/script.sh"
        try "#!/bin/sh\necho hi\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o750)
        let into = "\(lab.directory)/into"
        try FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: true)
        await #expect(lab.run(["cp", file, "agent1:\(into)"]).status == 0)
        await #expect(lab.run(["cp", file, "agent1:\(into)/renamed.sh"]).status == 0)
        #expect(try TreeFixture.mode("\(into)/script.sh") == 0o750)
        #expect(try String(contentsOfFile: "\(into)/renamed.sh", encoding: .utf8) == "#!/bin/sh\necho hi\n")
        // A directory without -r is refused with a reason.
        let noRecursive = await lab.run(["cp", into, "agent1:/tmp"])
        #expect(noRecursive.status == 1)
        #expect(noRecursive.stderr.contains("is a directory (use -r)"))
        // No temporary files are left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: into).filter { $0.contains(".ionlab-") }
        #expect(leftovers.isEmpty)
    }

    @Test func resultOfAJobSurvivesAControllerKill() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        // The job runs until the controller has died: it waits for a file the test writes after the kill.
        let gate = "\(lab.directory)/controller-killed"
        defer { try? Data().write(to: URL(fileURLWithPath: gate)) }
        let exec = Task.detached { await lab.run(["exec", "agent1", "--", "sh", "-c", "until [ -e \(gate) ]; do sleep 0.1; done; echo done"]) }
        try await eventually("the job to start", timeout: 30) { await lab.run(["events"]).stdout.contains("job.started") }
        lab.killController()
        try Data().write(to: URL(fileURLWithPath: gate))
        let cut = await exec.value
        #expect(cut.status != 0)
        #expect(cut.stderr.contains("may still run on agent1"))
        try await lab.startController()
        try await eventually("the job's result to reach the store", timeout: 45) {
            await lab.run(["jobs", "--json"]).stdout.contains("\"outcome\":\"completed\"")
        }
        let jobs = try await #require(JSONSerialization.jsonObject(with: Data(lab.run(["jobs", "--json"]).stdout.utf8)) as? [[String: Any]])
        let result = try #require(jobs.first?["result"] as? [String: Any])
        #expect(result["exitCode"] as? Int == 0)
        #expect(result["outputTail"] as? String == "done\n")
        let events = await lab.run(["events", "--json"]).stdout.split(separator: "\n")
        let finished = try #require(events.first { $0.contains("\"kind\":\"job.finished\"") })
        #expect(finished.contains("\"exitCode\":0"))
        #expect(finished.contains("done\\n"))
        // The agent reconnected by itself after the restart.
        await #expect(lab.agentStates()["agent1"] == "connected")
    }

    @Test func fanOutReportsEveryAgent() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("a1")
        try await lab.connectAgent("a2")
        _ = try await lab.agentConfig("a3")  // enrolled never: pending, not part of the fan-out
        let result = await lab.run(["exec", "--all", "--", "sh", "-c", "echo hi from $0"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("a1  ok  exit 0"))
        #expect(result.stdout.contains("a2  ok  exit 0"))
        #expect(result.stdout.contains("2 agents: 2 ok, 0 failed, 0 timed out, 0 down"))
        let mixed = await lab.run(["exec", "--all", "--timeout", "1", "--", "sh", "-c", "test $(hostname) = never || sleep 3"])
        #expect(mixed.status == 1)
        #expect(mixed.stdout.contains("0 ok, 0 failed, 2 timed out"))
        // --json: one FanoutLine per agent and nothing else, each on its own line as it comes.
        let json = await lab.run(["exec", "--all", "--json", "--", "sh", "-c", "echo from $(hostname) >/dev/null; exit 3"])
        #expect(json.status == 1)
        let lines = try json.stdout.split(separator: "\n").map { try JSONDecoder().decode(FanoutLine.self, from: Data($0.utf8)) }
        #expect(Set(lines.map(\.agent)) == ["a1", "a2"])
        #expect(lines.allSatisfy { $0.result?.exitCode == 3 && $0.result?.outcome == .completed })
        await #expect(lab.run(["exec", "a1", "--json", "--", "true"]).stderr.contains("--json works with --all or --fleet"))
    }

    @Test func agentsListHealthAndEventsRecordTheLifecycle() async throws {
        let lab = try await Lab()
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        try await eventually("a heartbeat", timeout: 30) { await lab.run(["agents", "--json"]).stdout.contains("bootID") }
        let json = try await #require(JSONSerialization.jsonObject(with: Data(lab.run(["agents", "--json"]).stdout.utf8)) as? [[String: Any]])
        let health = try #require(json.first?["health"] as? [String: Any])
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(health["bootID"] as? String == bootID)
        #expect((health["memoryTotalBytes"] as? Int ?? 0) > 0)
        #expect((health["diskTotalBytes"] as? Int ?? 0) > 0)
        #expect((health["load"] as? [Double])?.count == 3)
        #expect(health["agentVersion"] as? String == "0.1.0")
        let table = await lab.run(["agents"]).stdout
        #expect(table.contains("agent1") && table.contains("connected"))

        await lab.run(["exec", "agent1", "--", "true"])
        let kinds = await lab.run(["events", "--json"]).stdout.split(separator: "\n").compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["kind"] as? String
        }
        for kind in ["token.created", "agent.enrolled", "agent.connected", "job.started", "job.finished"] {
            #expect(kinds.contains(kind), "missing \(kind) in \(kinds)")
        }
        // --follow replays history and then streams live events.
        let follower = try lab.spawnCLI(["events", "--follow"], log: "follow.log")
        defer { kill(follower.processIdentifier, SIGKILL); follower.waitUntilExit() }
        try await eventually("the replayed history", timeout: 30) { lab.log("follow.log").contains("job.finished") }
        await lab.run(["agent", "revoke", "agent1"])
        try await eventually("the live revoke and disconnect events", timeout: 30) {
            lab.log("follow.log").contains("agent.revoked") && lab.log("follow.log").contains("agent.disconnected")
        }
    }

    @Test func certificatesAreRenewedBeforeTheyExpire() async throws {
        let lab = try await Lab(config: "agent_certificate_seconds: 6\n")
        defer { lab.tearDown() }
        try await lab.startController()
        try await lab.connectAgent("agent1")
        let certificatePath = "\(lab.directory)/agent-agent1/identity.pem"
        let first = try String(contentsOfFile: certificatePath, encoding: .utf8)
        try await eventually("a renewal", timeout: 15) { await lab.run(["events"]).stdout.contains("agent.certificate-renewed") }
        try await eventually("the new certificate on disk", timeout: 30) {
            (try? String(contentsOfFile: certificatePath, encoding: .utf8)) != first
        }
        // Past the first certificate's expiry, the agent reconnects with the renewed one.
        try await Task.sleep(for: .seconds(3))
        lab.killController()
        try await lab.startController()
        try await lab.waitConnected("agent1")
        await #expect(lab.run(["exec", "agent1", "--", "true"]).status == 0)
    }
}

/// Processes on this machine, read from /proc.
enum ProcessTable {
    static func commandLines(_ argv: [String]) -> [Int32] {
        let wanted = argv.joined(separator: "\0") + "\0"
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            return String(decoding: data, as: UTF8.self) == wanted ? pid : nil
        }
    }
}

/// A directory tree with files of many sizes, modes, an empty file, a nested directory and a symlink.
enum TreeFixture {
    static func make(at root: String, totalBytes: Int) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: "\(root)/nested/deeper", withIntermediateDirectories: true)
        let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? random.close() }
        var written = 0
        var index = 0
        let sizes = [1, 4096, 65_537, 1 << 20, 7 << 20 + 3, 33 << 20 + 1]
        while written < totalBytes {
            let size = min(sizes[index % sizes.count], totalBytes - written)
            let directory = ["", "/nested", "/nested/deeper"][index % 3]
            let path = "\(root)\(directory)/file-\(index).bin"
            try random.readData(ofLength: size).write(to: URL(fileURLWithPath: path))
            chmod(path, [0o644, 0o600, 0o755][index % 3])
            written += size
            index += 1
        }
        try Data().write(to: URL(fileURLWithPath: "\(root)/empty"))
        try manager.createSymbolicLink(atPath: "\(root)/link", withDestinationPath: "file-0.bin")
    }

    /// Relative path → "kind mode sha256" for every entry.
    static func manifest(_ root: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = "\(root)/\(relative)"
            var info = stat()
            lstat(path, &info)
            let mode = String(info.st_mode, radix: 8)
            if (info.st_mode & S_IFMT) == S_IFREG {
                result[relative] = "\(mode) \(await sha256(path))"
            } else if (info.st_mode & S_IFMT) == S_IFLNK {
                result[relative] = "\(mode) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "")"
            } else {
                result[relative] = mode
            }
        }
        return result
    }

    static func sha256(_ path: String) async -> String {
        let result = await Lab.runProgram("/usr/bin/sha256sum", [path], directory: "/tmp")
        return String(result.stdout.prefix(64))
    }

    static func mode(_ path: String) throws -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw LabError("cannot stat \(path)") }
        return UInt32(info.st_mode & 0o7777)
    }
}
