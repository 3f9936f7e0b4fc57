import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabProvision
import IonLabSpec
import IonLabWire
import NIOConcurrencyHelpers

/// What the fleet logic needs of VMs. The controller's is its ``VMManager`` over libvirt; the controller's
/// unit tests use a fake.
protocol VMProvisioning: Sendable {
    /// Fails unless the catalog has the image: an `up` fails before it creates anything.
    func checkImage(_ name: String) throws
    /// What each backend a fleet may use can take now, to place its VMs.
    func capacities(for spec: FleetSpec) async throws -> [HostCapacity]
    /// Provisions a VM and returns its record once its domain has started.
    func create(_ request: VMCreateRequest) async throws -> VMRecord
    func destroy(_ name: String) async throws
    /// Waits until the VM of this instance is ready and its agent connected: false after `patience` seconds,
    /// or as soon as the VM is gone or replaced.
    func waitReady(_ name: String, instanceID: String, patience: Double) async -> Bool
}

/// What fleets need of port forwards: the controller's ``ForwardManager``.
protocol ForwardKeeping: Sendable {
    /// Makes the forwards `owner` holds for `agent` exactly `rules`.
    func converge(_ rules: [ForwardRule], owner: ForwardOwner, agent: String) async throws
    /// Closes and forgets an agent's forwards (those `owner` holds, if given).
    func removeAll(agent: String, owner: ForwardOwner?) throws
}

/// Brings fleets up and down. `up` places the missing VMs, provisions them in parallel (at most `parallel`
/// at once), and starts each VM's workflow as soon as its own agent is ready. Run again, it converges: VMs
/// that exist are adopted, missing ones created, and steps recorded as done skipped.
final class FleetRunner: Sendable {
    let store: Store
    let events: EventLog
    let secrets: SecretDigest
    let provisioner: VMProvisioning
    let agents: AgentExecuting
    let forwards: ForwardKeeping
    /// How long a VM may take from its domain starting to its agent being ready.
    let readyPatienceSeconds: Double
    /// The pause before a step's next attempt, by attempt (tests make it nothing).
    let retryPause: @Sendable (Int) -> Duration
    /// Where pictures of VMs' screens go.
    let pictures: String?
    /// VMs' screens through their hypervisors.
    let screens: ScreenAccess?
    private let busy = NIOLockedValueBox<Set<String>>([])

    init(store: Store, events: EventLog, secrets: SecretDigest, provisioner: VMProvisioning, agents: AgentExecuting, forwards: ForwardKeeping,
         readyPatienceSeconds: Double = 1200, retryPause: @escaping @Sendable (Int) -> Duration = { .seconds(min(30, 2 * $0)) },
         pictures: String? = nil, screens: ScreenAccess? = nil) {
        self.store = store
        self.events = events
        self.secrets = secrets
        self.provisioner = provisioner
        self.agents = agents
        self.forwards = forwards
        self.readyPatienceSeconds = readyPatienceSeconds
        self.retryPause = retryPause
        self.pictures = pictures
        self.screens = screens
    }

    func up(_ request: FleetUpRequest) async throws -> FleetReport {
        let spec = request.spec
        try claim(spec.name)
        defer { busy.withLockedValue { _ = $0.remove(spec.name) } }
        let started = Date()
        let cpuBefore = ProcessCPU.seconds()

        let existing = Dictionary(try store.vms().map { ($0.name, $0) }) { first, _ in first }
        for vm in spec.vms {
            if let record = existing[vm.name], record.fleet != spec.name {
                let owner = record.fleet.map { "fleet \($0)" } ?? "no fleet (ionlab vm create)"
                throw ControllerError("VM \(vm.name) exists and belongs to \(owner); rename it in the spec or destroy it")
            }
        }
        let missing = spec.vms.filter { existing[$0.name] == nil }
        for image in spec.images { try provisioner.checkImage(image) }
        let placement = try await place(missing, of: spec)

        try store.saveFleet(spec.redactingSecrets(secrets.callAsFunction))
        for vm in spec.vms { events.assign(agent: vm.name, fleet: spec.name) }
        events.emit(.fleetStarted, fleet: spec.name,
                    "up: \(spec.vmsAndImages), \(missing.count) to create, \(spec.vms.count - missing.count) to adopt, "
                    + "\(spec.workflow.count) workflow step(s), at most \(request.parallel) provisioning at once",
                    detail: .fleetStarted(FleetStart(vms: spec.vms.count, creating: missing.count, parallel: request.parallel)))
        if !placement.isEmpty {
            let text = placement.sorted { $0.key < $1.key }.map { "\($0.key)→\($0.value)" }.joined(separator: " ")
            events.emit(.fleetPlaced, fleet: spec.name, "placed \(text)", detail: .placement(placement))
        }

        let slots = AsyncSemaphore(request.parallel)
        let outcomes = await withTaskGroup(of: VMOutcome.self) { group in
            for vm in spec.vms {
                group.addTask {
                    await self.bringUp(vm, of: spec, adopt: existing[vm.name], backend: placement[vm.name], slots: slots)
                }
            }
            var outcomes: [VMOutcome] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes.sorted { $0.vm < $1.vm }
        }

        let seconds = Date().timeIntervalSince(started)
        let cpu = ProcessCPU.seconds() - cpuBefore
        let report = FleetReport(fleet: spec.name, seconds: seconds, created: missing.count, adopted: spec.vms.count - missing.count,
                                 vms: outcomes, controllerCPUSeconds: cpu)
        let failed = outcomes.filter { $0.result != .ok }.count
        events.emit(.fleetComplete, fleet: spec.name,
                    "\(outcomes.count - failed) of \(outcomes.count) VM(s) ok in \(String(format: "%.1f", seconds))s; "
                    + "controller CPU \(String(format: "%.2f", cpu))s (\(String(format: "%.1f", 100 * cpu / max(seconds, 0.001)))% of the wall time)",
                    detail: .fleetComplete(FleetSummary(seconds: seconds, ok: outcomes.count - failed, failed: failed, created: report.created,
                                                        adopted: report.adopted, controllerCPUSeconds: cpu)))
        return report
    }

    private func claim(_ fleet: String) throws {
        let claimed = busy.withLockedValue { $0.insert(fleet).inserted }
        guard claimed else { throw ControllerError("fleet \(fleet) is already being brought up by another `ionlab up`") }
    }

    /// Chooses a backend for each VM to create, from the spec's backends (or all of them for `auto`).
    private func place(_ vms: [FleetVM], of spec: FleetSpec) async throws -> [String: String] {
        guard !vms.isEmpty else { return [:] }
        let hosts = try await provisioner.capacities(for: spec)
        let requests = vms.map { vm in
            Placement.Request(vm: vm.name, cpus: vm.cpus ?? spec.resources.cpus, memoryMiB: vm.memoryMib ?? spec.resources.memoryMib)
        }
        do {
            return try Placement.place(requests, on: hosts)
        } catch let error as ProvisionError {
            throw ControllerError(error.message)
        }
    }

    /// One VM's whole `up`: provision (or adopt), wait for its agent, run the workflow.
    private func bringUp(_ vm: FleetVM, of spec: FleetSpec, adopt record: VMRecord?, backend: String?, slots: AsyncSemaphore) async -> VMOutcome {
        let started = Date()
        var outcome = VMOutcome(vm: vm.name, backend: record?.backend ?? backend ?? "?", result: .failed, seconds: 0)
        func finish(_ result: VMOutcome.Result, step: String?, detail: String?) -> VMOutcome {
            outcome.result = result
            outcome.failedStep = step
            outcome.detail = detail
            outcome.seconds = Date().timeIntervalSince(started)
            if result == .ok {
                events.emit(.vmWorkflowDone, agent: vm.name, "workflow done: \(outcome.stepsRun) step(s) run, \(outcome.stepsSkipped) skipped",
                            detail: .elapsed(Elapsed(seconds: outcome.seconds)))
            } else {
                events.emit(.error, agent: vm.name, "\(result.rawValue) at \(step ?? "?"): \(detail?.split(whereSeparator: \.isNewline).first.map(String.init) ?? "")",
                            detail: .vmOutcome(VMEnd(result: result, step: step)))
            }
            return outcome
        }

        var instanceID: String
        if let record {
            instanceID = record.instanceID
            events.emit(.vmAdopted, agent: vm.name, "adopted: \(record.state.rawValue) on \(record.backend)")
        } else {
            await slots.acquire()
            do {
                let created = try await provisioner.create(
                    VMCreateRequest(name: vm.name, image: spec.image(of: vm), cpus: vm.cpus ?? spec.resources.cpus,
                                    memoryMiB: vm.memoryMib ?? spec.resources.memoryMib, diskGiB: vm.diskGib ?? spec.resources.diskGib,
                                    backend: backend, wait: false, fleet: spec.name))
                instanceID = created.instanceID
                try? store.deleteSteps(fleet: spec.name, vm: vm.name)  // a new machine: earlier step records are not its own
            } catch {
                slots.release()
                return finish(.failed, step: "provision", detail: AdminHandler.describe(error))
            }
            slots.release()
        }
        let rules = vm.forwards.map { ForwardRule(agent: vm.name, ports: $0) } + vm.reverseForwards.map { ForwardRule(agent: vm.name, reverse: true, ports: $0) }
        do {
            try await forwards.converge(rules, owner: .fleet(spec.name), agent: vm.name)
        } catch {
            return finish(.failed, step: "forwards", detail: AdminHandler.describe(error))
        }
        if !rules.isEmpty {
            events.emit(.vmForwards, agent: vm.name, rules.map(\.description).joined(separator: ", "))
        }

        guard await provisioner.waitReady(vm.name, instanceID: instanceID, patience: readyPatienceSeconds) else {
            let state = (try? store.vm(vm.name))?.state.rawValue ?? "gone"
            return finish(.timedOut, step: "boot", detail: "the agent was not ready within \(Int(readyPatienceSeconds))s (VM \(state))")
        }
        if let health = agents.health(of: vm.name) {
            events.emit(.healthCheck, agent: vm.name, HealthText.summary(health), detail: .health(health))
        }
        let runner = WorkflowRunner(fleet: spec.name, vm: vm.name, agent: agents, store: store, events: events, secrets: secrets,
                                    retryPause: retryPause, pictures: pictures, screens: screens)
        let result = await runner.run(spec.workflow)
        outcome.stepsRun = result.run
        outcome.stepsSkipped = result.skipped
        outcome.notes = result.notes
        return finish(result.result, step: result.failedStep, detail: result.detail)
    }

    /// Destroys every VM of a fleet at once, then forgets the fleet. VMs that could not be destroyed are named.
    func down(_ name: String) async throws -> String {
        let vms = try store.vms().filter { $0.fleet == name }
        let known = try store.fleet(name) != nil
        guard !vms.isEmpty || known else { throw ControllerError("no fleet named '\(name)'") }
        let failures = await withTaskGroup(of: String?.self) { group in
            for vm in vms {
                group.addTask {
                    do {
                        try await self.provisioner.destroy(vm.name)
                        try self.forwards.removeAll(agent: vm.name, owner: nil)
                        return nil
                    } catch {
                        return "\(vm.name): \(AdminHandler.describe(error))"
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures.sorted()
        }
        guard failures.isEmpty else { throw ControllerError("fleet \(name) is partly down; not destroyed: \(failures.joined(separator: "; "))") }
        try store.deleteFleet(name)
        events.emit(.fleetDown, fleet: name, "\(vms.count) VM(s) destroyed with their volumes, seeds and console logs")
        for vm in vms { events.assign(agent: vm.name, fleet: nil) }
        return "fleet \(name) is down: \(vms.count) VM(s) destroyed"
    }
}

/// How the VMs of fleets stand: where each runs, its agent's liveness and health, and its workflow step.
struct FleetStatus: Sendable {
    let store: Store
    let sessions: SessionRegistry
    /// Silence after which an agent counts as down.
    let downAfterSeconds: Double

    /// One VM as it stands, with what its status was made from.
    struct Row {
        var record: VMRecord
        var status: VMStatus
        var steps: [StepRecord]
    }

    /// The VMs (of one fleet, or all) with their agents' liveness, health and workflow step.
    func status(fleet: String?) throws -> [VMStatus] {
        try rows(fleet: fleet).map(\.status)
    }

    /// Reads each table once, however many VMs there are: the dashboard asks for a thousand at a time.
    func rows(fleet: String?) throws -> [Row] {
        let vms = try store.vms().filter { fleet == nil || $0.fleet == fleet }
        if let fleet, vms.isEmpty, try store.fleet(fleet) == nil { throw ControllerError("no fleet named '\(fleet)'") }
        let now = Date()
        let agents = Dictionary(try store.agents().map { ($0.name, $0) }) { first, _ in first }
        var specs: [String: FleetSpec] = [:]
        var steps: [String: [StepRecord]] = [:]
        for name in Set(vms.compactMap(\.fleet)) {
            specs[name] = try store.fleet(name)
            for step in try store.steps(fleet: name) { steps["\(name)/\(step.vm)", default: []].append(step) }
        }
        return vms.map { vm in
            let session = sessions.session(named: vm.name)
            let agent: VMStatus.Agent
            let lastHeartbeat = session?.lastHeartbeat ?? agents[vm.name]?.lastSeen
            if let session {
                let silence = now.timeIntervalSince(session.lastHeartbeat)
                let downAfter = downAfterSeconds
                agent = silence > downAfter ? .down : silence > downAfter / 2 ? .stale : .up
            } else {
                agent = agents[vm.name]?.state == .enrolled ? .down : .absent
            }
            let vmSteps = vm.fleet.flatMap { steps["\($0)/\(vm.name)"] } ?? []
            let status = VMStatus(name: vm.name, fleet: vm.fleet, backend: vm.backend, state: vm.state, agent: agent, lastHeartbeat: lastHeartbeat,
                                  health: session?.health ?? agents[vm.name]?.health,
                                  step: vm.fleet.flatMap { specs[$0] }.map { Self.stepText(vmSteps, of: $0) })
            return Row(record: vm, status: status, steps: vmSteps)
        }
    }

    private static func stepText(_ steps: [StepRecord], of spec: FleetSpec) -> String {
        if let running = steps.first(where: { $0.state == .running }) { return "running \(running.step + 1)/\(spec.workflow.count): \(running.name)" }
        if let failed = steps.last(where: { $0.state == .failed }) { return "failed \(failed.step + 1)/\(spec.workflow.count): \(failed.name)" }
        let done = steps.filter { $0.state == .done }.count
        if spec.workflow.isEmpty { return "no workflow" }
        return done == spec.workflow.count ? "done (\(done)/\(done))" : "\(done)/\(spec.workflow.count) done"
    }
}

/// A counting semaphore for tasks: at most `limit` holders at once, the others wait in order. A lock, not an
/// actor: taking a free place costs no hop to another executor (a forward takes one per connection).
final class AsyncSemaphore: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: NIOLockedValueBox<State>

    init(_ limit: Int) { state = NIOLockedValueBox(State(free: max(1, limit))) }

    func acquire() async {
        let taken: Bool = state.withLockedValue { state in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }
        if taken { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLockedValue { state in
                guard state.free > 0 else {
                    state.waiters.append(continuation)
                    return false
                }
                state.free -= 1
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Frees a place, or hands it to the first waiter.
    func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLockedValue { state in
            guard !state.waiters.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The process's own CPU time so far (user + system), from getrusage.
enum ProcessCPU {
    static func seconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return value(usage.ru_utime) + value(usage.ru_stime)
    }
}
