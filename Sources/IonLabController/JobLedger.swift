import IonLabAdminAPI
import IonLabAgentProtocol
import Logging

/// Where jobs are written down: each job as it starts, and its result once (however many times an agent
/// reports it), each with its event.
struct JobLedger: Sendable {
    let store: Store
    let events: EventLog
    let logger: Logger

    func started(_ spec: ExecSpec, agent: String) throws {
        try store.jobStarted(id: spec.jobID, agent: agent, argv: spec.argv)
        events.emit(.jobStarted, agent: agent, job: spec.jobID, GuestScripts.describe(spec.argv))
    }

    /// Stores a result (once) and emits its event. Storage failures are logged: a result must not break the
    /// connection that carried it.
    func finished(_ result: ExecResult, agent: String) {
        do {
            if try store.jobFinished(result, agent: agent) {
                let kind: EventKind = result.outcome == .lost ? .jobLost : .jobFinished
                events.emit(kind, agent: agent, job: result.jobID, result.summary,
                            detail: .job(JobDetail(outcome: result.outcome, exitCode: result.exitCode, output: String(result.outputTail.suffix(2048)))))
            }
        } catch {
            logger.error("cannot store the result of job \(result.jobID): \(error)")
        }
    }

    /// Jobs the store thinks run on `agent` that the agent no longer knows ended without a result.
    func markLost(of agent: String, known: Set<String>) {
        for id in (try? store.runningJobs(agent: agent)) ?? [] where !known.contains(id) {
            finished(ExecResult(jobID: id, outcome: .lost, error: "the agent no longer knows this job"), agent: agent)
        }
    }
}
