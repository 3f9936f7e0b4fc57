#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabWire
import NIOCore

/// The agent's jobs: those running, and results not yet acknowledged by the controller.
///
/// Results are written to the state directory when a job ends and deleted only when the controller
/// acknowledges them, so a result survives a dropped connection, a controller restart and an agent restart.
actor JobManager {
    private let directory: String
    private let group: EventLoopGroup
    private var running: [String: ProcessJob] = [:]
    private var pending: [String: ExecResult] = [:]

    init(directory: String, group: EventLoopGroup) {
        self.directory = directory
        self.group = group
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasSuffix(".json") {
            if let data = FileManager.default.contents(atPath: "\(directory)/\(file)"),
               let result = try? JSONDecoder().decode(ExecResult.self, from: data) {
                pending[result.jobID] = result
            }
        }
    }

    /// Spawns a job and starts running it in the background; its output goes to `stream` while attached.
    func start(_ spec: ExecSpec, stream: AgentStream) throws -> ProcessJob {
        guard running[spec.jobID] == nil, pending[spec.jobID] == nil else {
            throw Failure("job \(spec.jobID) already exists on this agent")
        }
        let job = try ProcessJob(spec: spec, group: group)
        job.attach(stream)
        running[spec.jobID] = job
        let group = self.group
        Task.detached {
            await job.run(group: group)
            let result = try await job.result.get()
            await self.finished(result)
        }
        return job
    }

    /// Records a result that could not even start, so the controller hears of it like any other.
    func failedToStart(_ spec: ExecSpec, error: String) -> ExecResult {
        let result = ExecResult(jobID: spec.jobID, outcome: .failedToStart, error: error)
        finished(result)
        return result
    }

    private func finished(_ result: ExecResult) {
        running[result.jobID] = nil
        pending[result.jobID] = result
        if let data = try? JSONEncoder().encode(result) {
            FileManager.default.createFile(atPath: path(result.jobID), contents: data)
        }
    }

    func job(_ id: String) -> ProcessJob? { running[id] }

    func acknowledge(_ ids: [String]) {
        for id in ids where pending.removeValue(forKey: id) != nil {
            unlink(path(id))
        }
    }

    /// Results the controller has not acknowledged yet.
    var unacknowledged: [ExecResult] { pending.values.sorted { $0.jobID < $1.jobID } }

    /// Jobs the controller should consider alive: running, or finished but unreported.
    var knownIDs: [String] { Array(running.keys) + Array(pending.keys) }

    private func path(_ id: String) -> String {
        let safe = id.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        return "\(directory)/\(safe).json"
    }
}
