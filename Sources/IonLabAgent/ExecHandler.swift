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
import X509

/// Serves one exec stream: starts the job, relays stdin and cancel, and ends with the job's result.
struct ExecHandler {
    let jobs: JobManager

    func serve(_ spec: ExecSpec, on stream: AgentStream) async throws {
        guard !spec.argv.isEmpty else { throw Failure("exec needs a command") }
        let job: ProcessJob
        do {
            job = try await jobs.start(spec, stream: stream)
        } catch let failure as Failure {
            let result = await jobs.failedToStart(spec, error: failure.message)
            try await stream.send(.execFinished(result))
            return
        }
        defer { job.attach(nil) }
        try await stream.send(.execStarted(jobID: spec.jobID, pid: job.pid))
        let result = try await withThrowingTaskGroup(of: ExecResult?.self) { group in
            group.addTask { try await job.result.get() }
            group.addTask {
                // Requests from the controller while the job runs: stdin, its end, and cancel.
                while true {
                    switch try await stream.next() {
                    case .data(.content, let bytes): try await job.writeStdin(bytes)
                    case .message(.stdinEnd): try await job.writeStdin(nil)
                    case .message(.cancel): job.terminate(because: .cancelled)
                    case .message(.resize(let rows, let columns)): job.resize(rows: rows, columns: columns)
                    case .data(let channel, _): throw WireError.unexpected("\(channel) data from the controller on an exec stream")
                    case .message(let other): throw WireError.unexpected("\(other.name) from the controller on an exec stream")
                    }
                }
            }
            let result = try await group.next()!!
            group.cancelAll()
            return result
        }
        try await stream.send(.execFinished(result))
    }
}

/// When to ask for a new certificate: after two thirds of its lifetime.
enum Renewal {
    static func isDue(_ certificate: Certificate, now: Date = Date()) -> Bool {
        // Certificates are back-dated an hour for clock skew; measure the lifetime from the real issue time.
        let issued = certificate.notValidBefore.addingTimeInterval(3600)
        let lifetime = certificate.notValidAfter.timeIntervalSince(issued)
        return now >= issued.addingTimeInterval(lifetime * 2 / 3)
    }
}
