import Foundation
import IonLabConfig
import IonLabTransfer
import IonLabWire

/// Runs a fleet's workflow on one VM through its agent: the steps in order, each bounded by its timeout and
/// handled by its `on_failure` policy. Every step is recorded in the store as it starts and ends, so a later
/// `up` skips the steps that are done, and adopts a job that finished while the controller was away.
struct WorkflowRunner {
    let controller: Controller
    let fleet: String
    let vm: String

    struct Outcome {
        var result: VMOutcome.Result = .ok
        var run = 0
        var skipped = 0
        var failedStep: String?
        var detail: String?
    }

    /// Why a step failed: a message, the last lines of its output, and whether its time ran out.
    struct StepFailure: Error {
        var message: String
        var output: String = ""
        var timedOut = false
    }

    var store: Store { controller.store }
    var events: EventLog { controller.events }

    func run(_ steps: [WorkflowStep]) async -> Outcome {
        var outcome = Outcome()
        let recorded = Dictionary(((try? store.steps(fleet: fleet, vm: vm)) ?? []).map { ($0.step, $0) }) { first, _ in first }
        for (index, step) in steps.enumerated() {
            let label = "step \(index + 1)/\(steps.count) \(step.name)"
            let signature = Store.json(step)
            if let previous = recorded[index], previous.signature == signature, let reason = alreadyDone(previous) {
                outcome.skipped += 1
                events.emit(.stepSkipped, agent: vm, label, fields: ["step": String(index + 1), "reason": reason])
                continue
            }
            outcome.run += 1
            if let failure = await runWithPolicy(step, index: index, label: label, signature: signature) {
                if case .continue = step.onFailure {
                    events.emit(.warning, agent: vm, "\(label) failed and the workflow goes on (on_failure: continue): \(failure.message)")
                    continue
                }
                outcome.result = failure.timedOut ? .timedOut : .failed
                outcome.failedStep = step.name
                outcome.detail = Self.lastLines(failure.output.isEmpty ? failure.message : failure.message + "\n" + failure.output)
                return outcome
            }
        }
        return outcome
    }

    /// Why a recorded step need not run again, or nil: it is done, or its job finished well while nobody watched.
    private func alreadyDone(_ record: StepRecord) -> String? {
        switch record.state {
        case .done:
            return "done by an earlier up"
        case .running:
            guard let job = record.job, let result = try? store.jobResult(job), Self.succeeded(result) else { return nil }
            try? store.stepFinished(fleet: fleet, vm: vm, step: record.step, state: .done, detail: "job \(job) finished while the controller was away")
            return "its job \(job) finished while the controller was away"
        case .failed:
            return nil
        }
    }

    /// Runs a step, again after a failure as many times as `retry:N` allows. Returns the last failure, or nil.
    private func runWithPolicy(_ step: WorkflowStep, index: Int, label: String, signature: String) async -> StepFailure? {
        let attempts: Int
        if case .retry(let extra) = step.onFailure { attempts = 1 + extra } else { attempts = 1 }
        var failure: StepFailure?
        for attempt in 1...attempts {
            let started = Date()
            let jobID = Format.newJobID()
            try? store.stepStarted(StepRecord(fleet: fleet, vm: vm, step: index, signature: signature, name: step.name, state: .running,
                                              job: jobID, startedAt: started))
            events.emit(.stepStarted, agent: vm, attempt == 1 ? label : "\(label) (attempt \(attempt) of \(attempts))",
                        fields: ["step": String(index + 1), "attempt": String(attempt)])
            do {
                let detail = try await perform(step, jobID: jobID)
                try? store.stepFinished(fleet: fleet, vm: vm, step: index, state: .done, detail: detail)
                events.emit(.stepDone, agent: vm, "\(label): \(detail)",
                            fields: ["step": String(index + 1), "seconds": Self.seconds(since: started)])
                return nil
            } catch {
                let failed = error as? StepFailure ?? StepFailure(message: AdminHandler.describe(error))
                failure = failed
                try? store.stepFinished(fleet: fleet, vm: vm, step: index, state: .failed, detail: failed.message)
                events.emit(.stepFailed, agent: vm, "\(label): \(failed.message)",
                            fields: ["step": String(index + 1), "attempt": String(attempt), "seconds": Self.seconds(since: started),
                                     "output": String(failed.output.suffix(2048)), "timed_out": String(failed.timedOut)])
                if attempt < attempts {
                    let pause = min(30, 2 * attempt)
                    events.emit(.warning, agent: vm, "\(label): retrying in \(pause)s (on_failure: \(step.onFailure))")
                    try? await Task.sleep(for: .seconds(pause))
                }
            }
        }
        return failure
    }

    /// Performs one step and returns a one-line account of it; throws `StepFailure`.
    private func perform(_ step: WorkflowStep, jobID: String) async throws -> String {
        switch step.operation {
        case .exec(let argv):
            let result = try await exec(argv, jobID: jobID, timeout: step.timeoutSeconds)
            return "exit 0 in \(String(format: "%.1f", result.durationSeconds))s"
        case .package(let names):
            events.emit(.packageInstalling, agent: vm, "installing \(names.joined(separator: ", "))", fields: ["packages": names.joined(separator: " ")])
            let result = try await exec(Self.packageInstall(names), jobID: jobID, timeout: step.timeoutSeconds)
            let versions = Self.installedVersions(result.outputTail, names: names)
            events.emit(.packageInstalled, agent: vm, "installed \(versions)", fields: ["packages": versions])
            return "installed \(versions)"
        case .service(let name, let state):
            let result = try await exec(Self.serviceCommand(name: name, state: state), jobID: jobID, timeout: step.timeoutSeconds)
            let properties = Self.properties(result.outputTail)
            let summary = "\(name) \(properties["ActiveState"] ?? "?")/\(properties["SubState"] ?? "?"), main PID \(properties["MainPID"] ?? "?")"
            if state != "stopped" { events.emit(.serviceStarted, agent: vm, summary, fields: properties) }
            return summary
        case .copy(let from, let to):
            events.emit(.deploying, agent: vm, "copying \(from) to \(to)")
            let summary = try await withStepDeadline(step.timeoutSeconds) { try await self.copy(from, to: to) }
            events.emit(.deployed, agent: vm, "\(summary.files) file(s), \(summary.bytes) bytes at \(summary.path), sha256 verified",
                        fields: ["files": String(summary.files), "bytes": String(summary.bytes), "path": summary.path])
            return "copied \(summary.files) file(s), \(summary.bytes) bytes, sha256 verified"
        case .recipe(let path):
            throw StepFailure(message: "recipe \(path) was not expanded (the CLI expands recipes when it loads the spec)")
        }
    }

    /// Runs a command on the VM's agent; the agent enforces the timeout and kills the command's process group.
    private func exec(_ argv: [String], jobID: String, timeout: Double) async throws -> ExecResult {
        let session = try await connectedSession(patience: min(timeout, 60))
        let spec = ExecSpec(jobID: jobID, argv: argv, timeoutSeconds: timeout)
        let result = try await withStepDeadline(timeout + 30) { try await session.exec(spec, controller: self.controller).result() }
        guard Self.succeeded(result) else {
            let how: String
            switch result.outcome {
            case .timedOut: how = "timed out after \(Int(timeout))s"
            case .completed: how = result.exitCode.map { "exited with \($0)" } ?? "killed by signal \(result.signal ?? 0)"
            default: how = result.error ?? result.outcome.rawValue
            }
            throw StepFailure(message: "\(argv.joined(separator: " ")) \(how)", output: result.outputTail, timedOut: result.outcome == .timedOut)
        }
        return result
    }

    private func copy(_ source: String, to destination: String) async throws -> TransferSummary {
        let sender = TreeSender(source: source, recursive: true)
        let (name, isDirectory) = try sender.validate()
        let stream = try await connectedSession(patience: 60).mux.openStream()
        defer { stream.close() }
        try await stream.send(.put(PutRequest(destination: destination, sourceName: name, sourceIsDirectory: isDirectory)))
        switch try await stream.nextMessage() {
        case .putReady: return try await sender.send(on: stream)
        case .failure(let failure): throw StepFailure(message: "\(destination): \(failure.message)")
        case let other: throw StepFailure(message: "unexpected \(other.name) before the copy")
        }
    }

    /// The VM's agent session, waiting a while for it: after a controller restart agents take a moment to return.
    private func connectedSession(patience: Double) async throws -> AgentSession {
        let deadline = Date().addingTimeInterval(patience)
        while true {
            if let session = controller.sessions.session(named: vm) { return session }
            guard Date() < deadline else { throw StepFailure(message: "the agent of \(vm) is not connected") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    private func withStepDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                throw StepFailure(message: "no answer within \(Int(seconds))s", timedOut: true)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    // MARK: Commands the built-in operations run

    /// apt-get install once cloud-init has finished (its first-boot apt runs would hold the lock), waiting
    /// for the dpkg lock rather than failing, then the installed versions.
    static func packageInstall(_ names: [String]) -> [String] {
        let script = """
            if command -v cloud-init >/dev/null; then cloud-init status --wait >/dev/null || true; fi
            export DEBIAN_FRONTEND=noninteractive
            apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" || exit $?
            dpkg-query -W -f='installed ${Package} ${Version}\\n' "$@"
            """
        return ["sh", "-c", script, "ionlab-package"] + names
    }

    static func serviceCommand(name: String, state: String) -> [String] {
        let verb: [String]
        switch state {
        case "restarted": verb = ["restart"]
        case "stopped": verb = ["stop"]
        case "enabled": verb = ["enable", "--now"]
        default: verb = ["start"]
        }
        let script = """
            command -v systemctl >/dev/null || { echo "systemd is not available on this machine" >&2; exit 127; }
            systemctl \(verb.joined(separator: " ")) "$1" || exit $?
            systemctl show -p ActiveState -p SubState -p MainPID "$1"
            """
        return ["sh", "-c", script, "ionlab-service", name]
    }

    /// "name version" for each package the install script reported.
    static func installedVersions(_ output: String, names: [String]) -> String {
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("installed ") }.map { $0.dropFirst("installed ".count) }
        return lines.isEmpty ? names.joined(separator: ", ") : lines.joined(separator: ", ")
    }

    /// `Key=Value` lines, as `systemctl show` prints them.
    static func properties(_ output: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    static func succeeded(_ result: ExecResult) -> Bool { result.outcome == .completed && result.exitCode == 0 }

    static func lastLines(_ text: String, count: Int = 6) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: true).suffix(count).joined(separator: "\n")
    }

    static func seconds(since start: Date) -> String { String(format: "%.1f", Date().timeIntervalSince(start)) }
}
