import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
@testable import IonLabController
import IonLabSpec
import NIOConcurrencyHelpers
import Testing

/// The workflow engine against a fake agent: steps in order, each with its policy and timeout, and skipped
/// when an earlier run did them. Nothing runs but this process.
@Suite struct WorkflowEngineTests {
    /// The steps of a spec with this workflow.
    static func steps(_ workflow: String) throws -> [WorkflowStep] {
        try fleetSpec("name: f\nimage: test-base\ncount: 1\nworkflow:\n" + workflow).workflow
    }

    static func runner(_ ground: Ground, _ agents: FakeAgents) -> WorkflowRunner {
        WorkflowRunner(fleet: "f", vm: "f-1", agent: agents, store: ground.store, events: ground.events, secrets: ground.secrets,
                       retryPause: { _ in .zero })
    }

    /// An agent whose `sh -c` jobs answer with the exit code of a script's `exit N`, and that counts how often
    /// each command ran.
    static func scriptedAgents(_ codes: @escaping @Sendable (String, Int) -> Int32) -> FakeAgents {
        let runs = NIOLockedValueBox<[String: Int]>([:])
        return FakeAgents { _, spec in
            let command = spec.argv.joined(separator: " ")
            let count = runs.withLockedValue { runs in
                runs[command, default: 0] += 1
                return runs[command]!
            }
            return FakeAgents.exit(codes(command, count), spec)
        }
    }

    @Test func stepsRunInOrderAndEachIsRecordedDone() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = FakeAgents()
        let steps = try Self.steps("  - exec: [echo, one]\n  - exec: [echo, two]\n  - exec: [echo, three]\n")
        let outcome = await Self.runner(ground, agents).run(steps)
        #expect(outcome.result == .ok && outcome.run == 3 && outcome.skipped == 0)
        #expect(agents.commands(on: "f-1") == [["echo", "one"], ["echo", "two"], ["echo", "three"]])
        #expect(try ground.store.steps(fleet: "f", vm: "f-1").map(\.state) == [.done, .done, .done])
        let kinds = try ground.allEvents().map(\.kind)
        #expect(kinds.filter { $0 == .stepStarted }.count == 3 && kinds.filter { $0 == .stepDone }.count == 3)
    }

    @Test func aFailedStepStopsTheWorkflowWithItsOutput() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = FakeAgents { _, spec in
            spec.argv == ["false"] ? FakeAgents.exit(3, spec, output: "line 1\nwhy it failed\n") : FakeAgents.exit(0, spec)
        }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - exec: [\"true\"]\n  - name: breaks\n    exec: [\"false\"]\n  - exec: [\"true\"]\n"))
        #expect(outcome.result == .failed)
        #expect(outcome.failedStep == "breaks")
        #expect(outcome.detail?.contains("false exited with 3") == true && outcome.detail?.contains("why it failed") == true, "\(outcome.detail ?? "")")
        #expect(agents.commands(on: "f-1").count == 2)
    }

    @Test func retryRunsAFailingStepAgainUntilItPasses() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        // The flaky command fails twice, then passes.
        let agents = Self.scriptedAgents { command, count in command == "flaky" && count < 3 ? 1 : 0 }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - exec: [flaky]\n    on_failure: retry:2\n  - exec: [after]\n"))
        #expect(outcome.result == .ok)
        #expect(agents.commands(on: "f-1") == [["flaky"], ["flaky"], ["flaky"], ["after"]])
        let events = try ground.allEvents()
        #expect(events.filter { $0.kind == .stepFailed }.count == 2)
        #expect(events.filter { $0.kind == .warning && $0.message.contains("retrying") }.count == 2)
        let attempts = events.filter { $0.kind == .stepStarted }.compactMap { event -> Int? in
            if case .step(let step)? = event.detail, step.number == 1 { return step.attempt }
            return nil
        }
        #expect(attempts == [1, 2, 3])
    }

    @Test func retryGivesUpAfterItsAttempts() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = Self.scriptedAgents { _, _ in 1 }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - exec: [never]\n    on_failure: retry:1\n  - exec: [after]\n"))
        #expect(outcome.result == .failed)
        #expect(agents.commands(on: "f-1") == [["never"], ["never"]])
    }

    @Test func continueLetsTheWorkflowGoOnAfterAFailure() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = Self.scriptedAgents { command, _ in command == "tolerated" ? 1 : 0 }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - exec: [tolerated]\n    on_failure: continue\n  - exec: [after]\n"))
        #expect(outcome.result == .ok)
        #expect(agents.commands(on: "f-1") == [["tolerated"], ["after"]])
        #expect(try ground.allEvents().contains { $0.kind == .warning && $0.message.contains("on_failure: continue") })
    }

    /// The agent enforces a job's timeout (it is in the spec it is sent); a step whose job timed out ends the
    /// workflow as timed out. A copy, which the controller streams itself, has the same deadline here.
    @Test func timeoutsReachTheAgentAndEndTheWorkflowAsTimedOut() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let timeouts = NIOLockedValueBox<[Double?]>([])
        let agents = FakeAgents { _, spec in
            timeouts.withLockedValue { $0.append(spec.timeoutSeconds) }
            return ExecResult(jobID: spec.jobID, outcome: .timedOut, signal: 9, durationSeconds: 7)
        }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - exec: [sleep, \"30\"]\n    timeout_seconds: 7\n  - exec: [after]\n"))
        #expect(outcome.result == .timedOut)
        #expect(timeouts.withLockedValue { $0 } == [7])
        #expect(outcome.detail?.contains("timed out after 7s") == true, "\(outcome.detail ?? "")")

        let slowCopy = FakeAgents()
        slowCopy.uploadDelay = .seconds(2)
        let scratch = ground.directory + "/site"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let copy = WorkflowRunner(fleet: "f", vm: "f-2", agent: slowCopy, store: ground.store, events: ground.events, secrets: ground.secrets)
        let copied = await copy.run(try Self.steps("  - copy: {from: \(scratch), to: /srv}\n    timeout_seconds: 0.2\n"))
        #expect(copied.result == .timedOut)
    }

    /// A second run skips what the first did; an edited step runs again; a step whose job finished well while
    /// nobody watched (the controller was killed) is adopted, not repeated.
    @Test func aSecondRunSkipsWhatIsDoneAndRunsWhatChanged() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = FakeAgents()
        let first = try Self.steps("  - exec: [echo, one]\n  - exec: [echo, two]\n")
        _ = await Self.runner(ground, agents).run(first)
        let again = await Self.runner(ground, agents).run(first)
        #expect(again.result == .ok && again.run == 0 && again.skipped == 2)
        let edited = try Self.steps("  - exec: [echo, one]\n  - exec: [echo, TWO]\n")
        let third = await Self.runner(ground, agents).run(edited)
        #expect(third.run == 1 && third.skipped == 1)
        #expect(agents.commands(on: "f-1").last == ["echo", "TWO"])
        #expect(agents.commands(on: "f-1").count == 3)

        // A step left running, whose job's result arrived while the controller was away.
        let lone = try Self.steps("  - exec: [long, job]\n")
        let signature = Store.json(lone[0].redactingSecrets(ground.secrets.callAsFunction))
        try ground.store.stepStarted(StepRecord(fleet: "f", vm: "f-3", step: 0, signature: signature, name: lone[0].name, state: .running,
                                                job: "j-away", startedAt: Date()))
        try ground.store.jobStarted(id: "j-away", agent: "f-3", argv: ["long", "job"])
        _ = try ground.store.jobFinished(ExecResult(jobID: "j-away", outcome: .completed, exitCode: 0), agent: "f-3")
        let adopting = FakeAgents()
        let adopted = await WorkflowRunner(fleet: "f", vm: "f-3", agent: adopting, store: ground.store, events: ground.events,
                                           secrets: ground.secrets).run(lone)
        #expect(adopted.skipped == 1 && adopting.commands(on: "f-3").isEmpty)
        #expect(try ground.allEvents().contains {
            guard $0.kind == .stepSkipped, case .step(let step)? = $0.detail else { return false }
            return step.reason?.contains("finished while the controller was away") == true
        })
    }

    /// A guest script's result is read from what it reported on descriptor 3, never from its output.
    @Test func guestScriptResultsAreDecodedFromTheirReport() async throws {
        let ground = try Ground()
        defer { ground.remove() }
        let agents = FakeAgents { _, spec in
            #expect(spec.reports)
            return FakeAgents.exit(0, spec, output: "installed decoy 0.0\n",
                                   report: #"{"installed":[{"name":"curl","version":"7.88.1-10"}]}"# + "\n")
        }
        let outcome = await Self.runner(ground, agents).run(try Self.steps("  - package: [curl]\n"))
        #expect(outcome.result == .ok)
        let installed = try ground.allEvents().first { $0.kind == .packageInstalled }
        guard case .packages(let packages)? = installed?.detail else {
            Issue.record("no package.installed detail")
            return
        }
        #expect(packages.installed == ["curl 7.88.1-10"])

        let silent = FakeAgents { _, spec in FakeAgents.exit(0, spec, output: "installed curl 1\n") }
        let failed = await WorkflowRunner(fleet: "f", vm: "f-2", agent: silent, store: ground.store, events: ground.events,
                                          secrets: ground.secrets).run(try Self.steps("  - package: [curl]\n"))
        #expect(failed.result == .failed)
        #expect(failed.detail?.contains("install-packages reported no result") == true, "\(failed.detail ?? "")")
    }
}
