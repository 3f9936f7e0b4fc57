import Foundation
import IonLabAgentProtocol
import IonLabConfig
import IonLabTransfer
import NIOCore

/// What a workflow needs of a VM's agent: jobs and uploads. The controller's are its connected sessions
/// (``SessionExecutor``); the controller's unit tests use a fake.
protocol AgentExecuting: Sendable {
    /// Runs a job on the agent (waiting up to `patience` seconds for it to be connected), writes `stdin` to it,
    /// and returns its result however it ended.
    func run(_ spec: ExecSpec, on agent: String, stdin: String?, patience: Double) async throws -> ExecResult
    /// Streams a local file or tree to `destination` on the agent's machine, sha256-verified.
    func upload(_ source: String, to destination: String, exclude: [String], on agent: String, patience: Double) async throws -> TransferSummary
    /// The health the agent last reported, if it is connected.
    func health(of agent: String) -> Health?
    /// A TCP connection from the agent's machine to `endpoint` there, as a stream (a forward without a port).
    func connect(to endpoint: Endpoint, on agent: String, patience: Double) async throws -> AgentStream
    /// A small file of the agent's machine, in memory only (a secret such as a VNC password): never written
    /// to disk, and never in a job's output, which events and the store keep.
    func read(_ path: String, limit: Int, on agent: String, patience: Double) async throws -> [UInt8]
}

/// Jobs and uploads through the agents' sessions.
struct SessionExecutor: AgentExecuting {
    let sessions: SessionRegistry
    let jobs: JobLedger

    func run(_ spec: ExecSpec, on agent: String, stdin: String?, patience: Double) async throws -> ExecResult {
        let job = try await session(agent, patience: patience).exec(spec, jobs: jobs)
        if let stdin {
            try await job.send(stdin: ByteBuffer(string: stdin))
            try await job.closeStdin()
        }
        return try await job.result()
    }

    func upload(_ source: String, to destination: String, exclude: [String], on agent: String, patience: Double) async throws -> TransferSummary {
        let sender = TreeSender(source: source, recursive: true, exclude: exclude)
        let (name, isDirectory) = try sender.validate()
        let request = AgentRequest.put(PutRequest(destination: destination, sourceName: name, sourceIsDirectory: isDirectory))
        let stream = try await session(agent, patience: patience).mux.open(request)
        defer { stream.close() }
        switch try await stream.nextMessage() {
        case .putReady: return try await sender.send(on: stream)
        case .failure(let failure): throw Failure("\(destination): \(failure.message)")
        case let other: throw Failure("unexpected \(other.name) before the copy")
        }
    }

    func health(of agent: String) -> Health? {
        sessions.session(named: agent)?.health
    }

    func connect(to endpoint: Endpoint, on agent: String, patience: Double) async throws -> AgentStream {
        try await session(agent, patience: patience).mux.open(.connect(endpoint))
    }

    func read(_ path: String, limit: Int, on agent: String, patience: Double) async throws -> [UInt8] {
        let stream = try await session(agent, patience: patience).mux.open(.get(GetRequest(source: path, recursive: false)))
        defer { stream.close() }
        var reader = SmallFileReader(path: path, limit: limit)
        while true {
            if let content = try reader.handle(try await stream.nextCarriedItem()) {
                try await stream.send(carrying: .transferDone(TransferSummary(files: 1, bytes: UInt64(content.count), path: path)))
                return content
            }
        }
    }

    /// After a controller restart agents take a moment to return: wait a while for this one.
    private func session(_ agent: String, patience: Double) async throws -> AgentSession {
        guard let session = await sessions.waitForSession(named: agent, patience: patience) else {
            throw Failure("the agent of \(agent) is not connected")
        }
        return session
    }
}
