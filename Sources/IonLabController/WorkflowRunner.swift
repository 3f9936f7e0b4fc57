import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabProvision
import IonLabSpec
import IonLabTransfer
import IonLabWire
import NIOCore

/// Runs a fleet's workflow on one VM through its agent: the steps in order, each bounded by its timeout and
/// handled by its `on_failure` policy. Every step is recorded in the store as it starts and ends, so a later
/// `up` skips the steps that are done, and adopts a job that finished while the controller was away.
struct WorkflowRunner {
    let fleet: String
    let vm: String
    /// The VM's agent.
    let agent: AgentExecuting
    let store: Store
    let events: EventLog
    let secrets: SecretDigest
    /// The pause before the next attempt of a step that failed (`on_failure: retry`), by attempt.
    var retryPause: @Sendable (Int) -> Duration = { attempt in .seconds(min(30, 2 * attempt)) }
    /// Where pictures of the VM's screen go (`STATE/pictures`); nil keeps none.
    var pictures: String? = nil
    /// The VM's screen through its hypervisor; nil where there is none (the controller's unit tests, mostly).
    var screens: ScreenAccess? = nil

    struct Outcome {
        var result: VMOutcome.Result = .ok
        var run = 0
        var skipped = 0
        var failedStep: String?
        var detail: String?
        /// Said once in the `up` summary and stored nowhere (a generated password).
        var notes: [String] = []
    }

    /// Why a step failed: a message, the last lines of its output, and whether its time ran out.
    struct StepFailure: Error {
        var message: String
        var output: String = ""
        var timedOut = false
    }

    func run(_ steps: [WorkflowStep]) async -> Outcome {
        var outcome = Outcome()
        let recorded = Dictionary(((try? store.steps(fleet: fleet, vm: vm)) ?? []).map { ($0.step, $0) }) { first, _ in first }
        for (index, step) in steps.enumerated() {
            let label = "step \(index + 1)/\(steps.count) \(step.name)"
            let signature = Store.json(step.redactingSecrets(secrets.callAsFunction))
            if let previous = recorded[index], previous.signature == signature, let reason = alreadyDone(previous) {
                outcome.skipped += 1
                events.emit(.stepSkipped, agent: vm, label, detail: .step(StepDetail(number: index + 1, reason: reason)))
                continue
            }
            outcome.run += 1
            if let failure = await runWithPolicy(step, index: index, label: label, signature: signature, notes: &outcome.notes) {
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
    private func runWithPolicy(_ step: WorkflowStep, index: Int, label: String, signature: String, notes: inout [String]) async -> StepFailure? {
        let attempts: Int
        if case .retry(let extra) = step.onFailure { attempts = 1 + extra } else { attempts = 1 }
        var failure: StepFailure?
        for attempt in 1...attempts {
            let started = Date()
            let jobID = Format.newJobID()
            try? store.stepStarted(StepRecord(fleet: fleet, vm: vm, step: index, signature: signature, name: step.name, state: .running,
                                              job: jobID, startedAt: started))
            events.emit(.stepStarted, agent: vm, attempt == 1 ? label : "\(label) (attempt \(attempt) of \(attempts))",
                        detail: .step(StepDetail(number: index + 1, attempt: attempt)))
            do {
                let detail = try await perform(step, jobID: jobID, notes: &notes)
                try? store.stepFinished(fleet: fleet, vm: vm, step: index, state: .done, detail: detail)
                events.emit(.stepDone, agent: vm, "\(label): \(detail)",
                            detail: .step(StepDetail(number: index + 1, seconds: Date().timeIntervalSince(started))))
                return nil
            } catch {
                let failed = error as? StepFailure ?? StepFailure(message: AdminHandler.describe(error))
                failure = failed
                try? store.stepFinished(fleet: fleet, vm: vm, step: index, state: .failed, detail: failed.message)
                events.emit(.stepFailed, agent: vm, "\(label): \(failed.message)",
                            detail: .step(StepDetail(number: index + 1, attempt: attempt, seconds: Date().timeIntervalSince(started),
                                                     output: String(failed.output.suffix(2048)), timedOut: failed.timedOut)))
                if attempt < attempts {
                    let pause = retryPause(attempt)
                    events.emit(.warning, agent: vm, "\(label): retrying in \(pause.components.seconds)s (on_failure: \(step.onFailure))")
                    try? await Task.sleep(for: pause)
                }
            }
        }
        return failure
    }

    /// Runs a command on the VM's agent and returns its result however it ended; the agent enforces the
    /// timeout and kills the command's process group.
    /// `stdin` is how a secret reaches a command: never in its argv, which the store keeps and any user of
    /// the VM can read in /proc.
    func run(_ argv: [String], jobID: String = Format.newJobID(), timeout: Double, stdin: String? = nil,
             reports: Bool = false) async throws -> ExecResult {
        let spec = ExecSpec(jobID: jobID, argv: argv, stdin: stdin != nil, timeoutSeconds: timeout, reports: reports)
        let (agent, vm) = (self.agent, self.vm)
        // The agent enforces the timeout; this deadline is for an agent that stops answering.
        return try await withStepDeadline(timeout + 30) {
            try await agent.run(spec, on: vm, stdin: stdin, patience: min(timeout, 60))
        }
    }

    /// Runs a command on the VM's agent; anything but exit 0 is a `StepFailure`.
    func exec(_ argv: [String], jobID: String = Format.newJobID(), timeout: Double, stdin: String? = nil,
              reports: Bool = false) async throws -> ExecResult {
        let result = try await run(argv, jobID: jobID, timeout: timeout, stdin: stdin, reports: reports)
        guard Self.succeeded(result) else {
            let how: String
            switch result.outcome {
            case .timedOut: how = "timed out after \(Int(timeout))s"
            case .completed: how = result.exitCode.map { "exited with \($0)" } ?? "killed by signal \(result.signal ?? 0)"
            default: how = result.error ?? result.outcome.rawValue
            }
            throw StepFailure(message: "\(GuestScripts.describe(argv)) \(how)", output: result.outputTail, timedOut: result.outcome == .timedOut)
        }
        return result
    }

    /// Runs a guest script and returns the result it reported; anything but exit 0 is a `StepFailure`.
    func run<Result>(_ script: GuestScript<Result>, jobID: String = Format.newJobID(), timeout: Double,
                     stdin: String? = nil) async throws -> Result {
        try decode(script, try await exec(try script.argv(), jobID: jobID, timeout: timeout, stdin: stdin, reports: true))
    }

    /// The result a guest script reported, or a `StepFailure` saying why there is none.
    func decode<Result>(_ script: GuestScript<Result>, _ result: ExecResult) throws -> Result {
        do {
            return try script.decode(result)
        } catch let error as GuestScriptError {
            throw StepFailure(message: error.description, output: result.outputTail)
        }
    }

    /// Streams a local file or tree to `destination` in the VM, sha256-verified.
    func upload(_ source: String, to destination: String, exclude: [String] = []) async throws -> TransferSummary {
        try await agent.upload(source, to: destination, exclude: exclude, on: vm, patience: 60)
    }

    func withStepDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(seconds: seconds, orThrow: StepFailure(message: "no answer within \(Int(seconds))s", timedOut: true), body)
    }

    static func succeeded(_ result: ExecResult) -> Bool { result.outcome == .completed && result.exitCode == 0 }

    static func lastLines(_ text: String, count: Int = 6) -> String {
        text.split(whereSeparator: \.isNewline).suffix(count).joined(separator: "\n")
    }

}
