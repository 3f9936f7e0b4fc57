import Crypto
import Foundation
@testable import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabYAML
@testable import IonLabController
import IonLabProvision
import IonLabSpec
import IonLabTransfer
import Logging
import NIOConcurrencyHelpers

/// A store, an event log and a secrets key in a scratch directory: what every controller service stands on,
/// with no process and no socket.
struct Ground {
    let directory: String
    let store: Store
    let events: EventLog
    let secrets = SecretDigest(key: SymmetricKey(size: .bits256))

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-unit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try Store(path: "\(directory)/ionlab.sqlite")
        events = EventLog(store: store, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Every event so far, oldest first.
    func allEvents() throws -> [Event] { try store.events(after: 0, limit: 100_000) }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// An agent that runs nothing: each job's result comes from `answer`, and every job and upload is recorded.
final class FakeAgents: AgentExecuting, @unchecked Sendable {
    private let lock = NIOLock()
    private var specs: [(agent: String, spec: ExecSpec)] = []
    private var uploads: [(agent: String, source: String, destination: String)] = []
    let answer: @Sendable (String, ExecSpec) async throws -> ExecResult
    var uploadDelay: Duration = .zero

    init(answer: @escaping @Sendable (String, ExecSpec) async throws -> ExecResult = { _, spec in FakeAgents.exit(0, spec) }) {
        self.answer = answer
    }

    static func exit(_ code: Int32, _ spec: ExecSpec, output: String = "", report: String? = nil) -> ExecResult {
        ExecResult(jobID: spec.jobID, outcome: .completed, exitCode: code, durationSeconds: 0.01, outputTail: output, report: report)
    }

    func run(_ spec: ExecSpec, on agent: String, stdin: String?, patience: Double) async throws -> ExecResult {
        lock.withLock { specs.append((agent, spec)) }
        return try await answer(agent, spec)
    }

    func upload(_ source: String, to destination: String, exclude: [String], on agent: String, patience: Double) async throws -> TransferSummary {
        lock.withLock { uploads.append((agent, source, destination)) }
        try await Task.sleep(for: uploadDelay)
        return TransferSummary(files: 1, directories: 0, bytes: 1, path: destination)
    }

    func health(of agent: String) -> Health? { nil }

    /// The fake machine has no TCP services: a forwarded connection is refused, as the agent refuses one.
    func connect(to endpoint: Endpoint, on agent: String, patience: Double) async throws -> AgentStream {
        throw Failure("cannot connect to \(endpoint): connection refused")
    }

    /// Nor any file to read.
    func read(_ path: String, limit: Int, on agent: String, patience: Double) async throws -> [UInt8] {
        throw Failure("\(path): no such file")
    }

    /// The argv of every job run on `agent`, in order.
    func commands(on agent: String) -> [[String]] { lock.withLock { specs.filter { $0.agent == agent }.map(\.spec.argv) } }
    var uploadCount: Int { lock.withLock { uploads.count } }
}

/// Backends that answer with the capacities given, and VMs that are ready as soon as they are created:
/// records go into the store as the real provisioner's do, so a second `up` finds and adopts them.
final class FakeVMs: VMProvisioning, @unchecked Sendable {
    let store: Store
    let hosts: [HostCapacity]
    private let lock = NIOLock()
    private(set) var created: [VMCreateRequest] = []
    private(set) var destroyed: [String] = []
    /// Names whose creation fails, and names that never get ready.
    var failing: Set<String> = []
    var neverReady: Set<String> = []

    init(store: Store, hosts: [HostCapacity]) {
        self.store = store
        self.hosts = hosts
    }

    func checkImage(_ name: String) throws {
        guard ["test-base", "desktop-base"].contains(name) else { throw ControllerError("no image named '\(name)'") }
    }

    func capacities(for spec: FleetSpec) async throws -> [HostCapacity] { hosts }

    func create(_ request: VMCreateRequest) async throws -> VMRecord {
        lock.withLock { created.append(request) }
        if failing.contains(request.name) { throw ControllerError("backend refused \(request.name)") }
        let record = VMRecord(name: request.name, backend: request.backend ?? "?", image: request.image, state: .ready,
                              instanceID: "iid-\(request.name)-\(UUID().uuidString.prefix(4))", cpus: request.cpus,
                              memoryMiB: request.memoryMiB, diskGiB: request.diskGiB, domainType: "test", domainUUID: "",
                              pool: "default", volumes: [], seedHash: "", consoleLog: "", createdAt: Date(), fleet: request.fleet)
        try store.insertVM(record)
        return record
    }

    func destroy(_ name: String) async throws {
        lock.withLock { destroyed.append(name) }
        try store.deleteVM(name)
    }

    func waitReady(_ name: String, instanceID: String, patience: Double) async -> Bool {
        !neverReady.contains(name)
    }

    var createdNames: [String] { lock.withLock { created.map(\.name) } }
}

/// A fleet spec from YAML, as the CLI would send it.
func fleetSpec(_ yaml: String) throws -> FleetSpec {
    try StrictYAML.decode(FleetSpec.self, from: yaml, file: "fleet.yaml")
}

/// Forwards in memory: what fleets asked to hold, by agent; a rule listed in `refused` fails to open.
final class FakeForwards: ForwardKeeping, @unchecked Sendable {
    private let lock = NSLock()
    private var held: [String: (owner: ForwardOwner, rules: [ForwardRule])] = [:]
    let refused: Set<PortForward>

    init(refused: Set<PortForward> = []) { self.refused = refused }

    func converge(_ rules: [ForwardRule], owner: ForwardOwner, agent: String) async throws {
        if let bad = rules.first(where: { refused.contains($0.ports) }) {
            throw ControllerError("cannot listen on \(bad.ports.listen): address already in use")
        }
        lock.withLock { held[agent] = (owner, rules) }
    }

    func removeAll(agent: String, owner: ForwardOwner?) throws {
        lock.withLock { _ = held.removeValue(forKey: agent) }
    }

    func rules(of agent: String) -> [ForwardRule] { lock.withLock { held[agent]?.rules ?? [] } }
    func owner(of agent: String) -> ForwardOwner? { lock.withLock { held[agent]?.owner } }
}
