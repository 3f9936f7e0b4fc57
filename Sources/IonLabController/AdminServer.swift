import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabWire
import NIOCore
import NIOPosix

/// The CLI's way in: a UNIX socket in the state directory, mode 0600, one request per connection.
struct AdminServer {
    let controller: Controller
    let server: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>

    static func bind(controller: Controller) async throws -> AdminServer {
        let path = controller.paths.adminSocket
        if FileManager.default.fileExists(atPath: path) {
            if await AdminClient.isServing(socket: path, group: controller.group) {
                throw ControllerError("another controller is already serving \(controller.paths.directory) (\(path) answers)")
            }
            unlink(path)
        }
        let previousMask = umask(0o177)
        defer { umask(previousMask) }
        let server = try await ServerBootstrap(group: controller.group)
            .bind(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        chmod(path, 0o600)
        return AdminServer(controller: controller, server: server)
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await handle(connection) }
                }
            }
        }
    }

    private func handle(_ connection: NIOAsyncChannel<Frame, Frame>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                let mux = MuxConnection<AdminServerRole>(writer: outbound, side: .controller)
                defer { mux.fail(WireError.connectionClosed) }
                try await withThrowingDiscardingTaskGroup { group in
                    var helloSeen = false
                    for try await frame in inbound {
                        switch try mux.route(frame) {
                        case .control(.hello(let hello)):
                            guard !helloSeen else { throw WireError.unexpected("a second hello") }
                            try ProtocolVersion.check(hello.protocolVersion)
                            helloSeen = true
                            try await mux.sendControl(.welcome(Welcome(name: "admin", software: "ionlab controller")))
                        case .opened(let stream, let request):
                            guard helloSeen else { throw WireError.unexpected("a request before hello") }
                            group.addTask { await AdminHandler(controller: controller).serve(request, on: stream) }
                        case .delivered:
                            break
                        }
                    }
                    group.cancelAll()
                }
            }
        } catch {
            controller.logger.debug("admin connection: \(Format.error(error))")
        }
    }
}

/// Serves one admin request on its stream.
struct AdminHandler {
    let controller: Controller

    func serve(_ request: AdminRequest, on stream: AdminStream) async {
        defer { stream.close() }
        do {
            switch request {
            case .listAgents:
                try await ListingParts.send(try controller.agents.statuses(), as: AdminStreamMessage.agents, noun: "agents", on: stream)
            case .createToken(let name, let endpoints, let ttl):
                let dial = try endpoints.map { try Endpoint(parsing: $0) }
                try await stream.send(.token(try controller.enrollment.createToken(name: name, endpoints: dial, ttl: ttl)))
            case .revoke(let name):
                try await controller.agents.revoke(name)
                try await stream.send(.ok("revoked \(name)"))
            case .exec(let agent, let spec):
                try await exec(spec, on: agent, stream: stream)
            case .execAll(let spec, let target):
                try await fanout(spec, to: target, stream: stream)
            case .put(let agent, let put):
                try await relayPut(put, to: agent, stream: stream)
            case .get(let agent, let get):
                try await relayGet(get, from: agent, stream: stream)
            case .events(let query):
                try await streamEvents(query, stream: stream)
            case .jobs(let agent, let limit):
                let jobs = try controller.store.jobs(agent: agent, limit: max(0, min(limit, 1_000_000))).map(ListingParts.shortened)
                try await ListingParts.send(jobs, as: AdminStreamMessage.jobs, noun: "jobs", on: stream)
            case .vmCreate(let request):
                try await createVM(wait: request.wait, name: request.name, stream: stream) { try await controller.vms.create(request) }
            case .vmClone(let source, let name, let wait):
                try await createVM(wait: wait, name: name, stream: stream) { try await controller.vms.clone(source: source, name: name, wait: wait) }
            case .vmList:
                try await ListingParts.send(try controller.store.vms(), as: AdminStreamMessage.vms, noun: "VMs", on: stream)
            case .vmPower(let name, let action, let timeout, let wait):
                let ends: Set<EventKind>
                switch action {
                case .stop: ends = [.vmStopped]
                case .suspend: ends = [.vmSuspended]
                case .resume: ends = [.vmResumed]
                case .start, .restart: ends = wait ? [.vmReady, .vmFailed] : [.vmStarted]
                }
                try await followingVM(name, until: ends, stream: stream) { try await controller.vms.power(action, name, timeout: timeout) }
            case .vmInfo(let name):
                guard let record = try controller.store.vm(name) else { throw ControllerError("no VM named '\(name)'") }
                let agent = try controller.agents.statuses().first { $0.name == name }
                try await stream.send(.vmInfo(VMInfo(record: record, domainState: await controller.vms.domainState(record), agent: agent,
                                                    forwards: controller.forwards.records(agent: name),
                                                    snapshots: (try? await controller.vms.snapshots(of: record)) ?? [],
                                                    boot: BootTimeline.of(try controller.store.events(of: name, kinds: BootTimeline.kinds)))))
            case .vmScreenshot(let name):
                let screenshot = try await controller.vms.screenshot(of: name)
                guard screenshot.png.count <= ScreenshotHeader.maximumBytes else {
                    throw ControllerError("the screenshot of \(name) is \(screenshot.png.count) bytes, more than \(ScreenshotHeader.maximumBytes)")
                }
                try await stream.send(.screenshot(ScreenshotHeader(width: screenshot.width, height: screenshot.height, bytes: screenshot.png.count)))
                try await stream.send(data: ByteBuffer(bytes: screenshot.png), on: .content)
                try await stream.send(.ok("\(screenshot.width) × \(screenshot.height)"))
            case .vmDisplay(let name):
                try await stream.send(.display(try await controller.vms.display(of: name)))
            case .vmDesktop(let name, let input):
                let driver = DesktopDriver(screens: controller.vms, pictures: "\(controller.paths.directory)/pictures", store: controller.store)
                try await stream.send(.desktop(try await driver.perform(input, on: name)))
            case .report(let fleet):
                let page = Array(try FleetReportMaker(controller: controller).html(fleet: fleet).utf8)
                try await stream.send(.document(DocumentHeader(bytes: page.count, mediaType: "text/html; charset=utf-8")))
                for offset in stride(from: 0, to: page.count, by: 256 << 10) {
                    try await stream.send(data: ByteBuffer(bytes: page[offset..<min(page.count, offset + (256 << 10))]), on: .content)
                }
                try await stream.send(.ok("report of \(fleet): \(page.count) bytes"))
            case .vmSnapshot(let name, let action):
                try await snapshot(action, of: name, stream: stream)
            case .vmDestroy(let name):
                try await controller.vms.destroy(name)
                try controller.forwards.removeAll(agent: name)
                try await stream.send(.ok("destroyed \(name)"))
            case .forward(let rule, let keep):
                try await forward(rule, keep: keep, stream: stream)
            case .forwards:
                try await ListingParts.send(controller.forwards.records(), as: AdminStreamMessage.forwards, noun: "forwards", on: stream)
            case .unforward(let key):
                try controller.forwards.remove(key)
                try await stream.send(.ok("closed the forward on \(key)"))
            case .fleetUp(let request):
                try await fleetUp(request, stream: stream)
            case .fleetStatus(let name):
                try await ListingParts.send(try controller.fleetStatus.status(fleet: name), as: AdminStreamMessage.fleetStatus, noun: "VMs", on: stream)
            case .fleetDown(let name):
                try await relayingFleetEvents(name, to: stream) { try await controller.fleets.down(name) } then: { message in
                    try await stream.send(.ok(message))
                }
            }
        } catch is CancellationError {
            return
        } catch {
            try? await stream.send(.failure(Failure(Self.describe(error))))
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let failure as Failure: return failure.message
        case let error as ValueError: return error.message
        default: return Format.error(error)
        }
    }

    /// An interactive job: output flows to the CLI as it comes; stdin and cancel flow back. If the CLI goes
    /// away, the job is cancelled, as a remote command is when its ssh client dies.
    private func exec(_ spec: ExecSpec, on agent: String, stream: AdminStream) async throws {
        try spec.check()
        let job = try await controller.agents.connectedSession(agent).exec(spec, jobs: controller.jobs)
        // If the CLI goes away mid-job, the stream to the agent ends too (the job's result still arrives
        // with the agent's next report).
        defer { job.stream.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    while true {
                        switch try await stream.nextCarriedItem() {
                        case .data(_, let bytes): try await job.send(stdin: bytes)
                        case .message(.stdinEnd): try await job.closeStdin()
                        case .message(.cancel): await job.cancel()
                        case .message(.resize(let rows, let columns)): try await job.resize(rows: rows, columns: columns)
                        case .message(let other): throw WireError.unexpected("\(other.name) from the CLI during exec")
                        }
                    }
                } catch is CancellationError {
                    return
                } catch {
                    await job.cancel()
                }
            }
            while true {
                switch try await job.next() {
                case .started(let pid):
                    try await stream.send(carrying: .execStarted(jobID: spec.jobID, pid: pid))
                case .output(let channel, let bytes):
                    try await stream.send(data: bytes, on: channel)
                case .finished(let result):
                    try await stream.send(carrying: .execFinished(result))
                    group.cancelAll()
                    return
                }
            }
        }
    }

    private func snapshot(_ action: SnapshotAction, of name: String, stream: AdminStream) async throws {
        switch action {
        case .create(let snapshot, let description):
            let info = try await controller.vms.createSnapshot(of: name, named: snapshot, description: description)
            try await stream.send(.ok("snapshot \(snapshot) of \(name) taken: \(info.hasMemory ? "disk and memory" : "disk")"))
        case .list:
            try await ListingParts.send(try await controller.vms.snapshots(of: name), as: AdminStreamMessage.snapshots, noun: "snapshots", on: stream)
        case .revert(let snapshot, let wait):
            let ends: Set<EventKind> = wait ? [.vmReady, .vmFailed, .vmStopped] : [.vmReverted]
            // A snapshot of a shut-off VM leaves it shut off: its vm.stopped ends the wait.
            try await followingVM(name, until: ends, stream: stream) { try await controller.revert(name, to: snapshot) }
        case .delete(let snapshot):
            try await controller.vms.deleteSnapshot(of: name, named: snapshot)
            try await stream.send(.ok("snapshot \(snapshot) of \(name) deleted"))
        }
    }

    /// A kept forward is the controller's; a command's lasts until the CLI goes away, and the lines about
    /// its failed connections go to the CLI (the newest, if it reads slower than they come).
    private func forward(_ rule: ForwardRule, keep: Bool, stream: AdminStream) async throws {
        if keep {
            try await controller.forwards.open(rule, owner: .kept)
            try await stream.send(.ok("forwarding \(rule) (kept: `ionlab forwards remove` closes it)"))
            return
        }
        let (notices, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(32))
        let forward = try await controller.forwards.open(rule, owner: .command) { sink.yield($0) }
        defer { controller.forwards.close(forward) }
        try await stream.send(.forwards([forward.record]))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await line in notices { try await stream.send(.notice(line)) }
            }
            // The CLI sends nothing more: the read ends when it goes away.
            group.addTask { _ = try await stream.next() }
            defer {
                sink.finish()
                group.cancelAll()
            }
            try await group.next()
        }
    }

    /// Runs a command on the targeted agents at once; one line per agent as results arrive.
    private func fanout(_ spec: ExecSpec, to target: ExecTarget, stream: AdminStream) async throws {
        try spec.check()
        let agents = try fanoutTargets(target)
        await withTaskGroup(of: FanoutLine.self) { group in
            for agent in agents {
                var mine = spec
                mine.jobID = Format.newJobID()
                group.addTask {
                    guard let session = controller.sessions.session(named: agent) else {
                        return FanoutLine(agent: agent, error: "down")
                    }
                    do {
                        return FanoutLine(agent: agent, result: try await session.exec(mine, jobs: controller.jobs).result())
                    } catch {
                        return FanoutLine(agent: agent, error: Self.describe(error))
                    }
                }
            }
            for await line in group {
                try? await stream.send(.fanoutResult(line))
            }
        }
        try await stream.send(.ok("\(agents.count) agents"))
    }

    private func fanoutTargets(_ target: ExecTarget) throws -> [String] {
        switch target {
        case .all:
            return try controller.store.agents().filter { $0.state == .enrolled }.map(\.name)
        case .fleet(let fleet):
            let names = try controller.store.vms().filter { $0.fleet == fleet }.map(\.name)
            guard !names.isEmpty else { throw ControllerError("fleet \(fleet) has no VMs") }
            return names
        case .agents(let names):
            return names
        }
    }

    /// `up`: the fleet runs in its own task, so it goes on if the CLI leaves; meanwhile the fleet's events
    /// go to the CLI as they happen, then the report.
    private func fleetUp(_ request: FleetUpRequest, stream: AdminStream) async throws {
        let parallel = max(1, request.parallel)
        var request = request
        request.parallel = parallel
        try await relayingFleetEvents(request.spec.name, to: stream) { [request] in
            try await controller.fleets.up(request)
        } then: { report in
            try await stream.send(.fleetReport(report))
        }
    }

    /// Runs `work` in a task of its own while relaying the fleet's live events, then hands over its result.
    private func relayingFleetEvents<T: Sendable>(_ fleet: String, to stream: AdminStream, _ work: @escaping @Sendable () async throws -> T,
                                                  then finish: (T) async throws -> Void) async throws {
        let live = controller.events.follow()
        let running = Task { try await work() }
        let relay = Task {
            for await event in live.events where event.fleet == fleet {
                try? await stream.send(.events([event]))
            }
        }
        let result = await running.result
        live.stop()
        await relay.value
        try await finish(try result.get())
    }

    private func relayPut(_ request: PutRequest, to agent: String, stream: AdminStream) async throws {
        let remote = try await controller.agents.connectedSession(agent).mux.open(.put(request))
        defer { remote.close() }
        let ready = try await remote.nextMessage()
        try await stream.send(carrying: ready)
        guard case .putReady = ready else { return }
        try await StreamRelay.relayTransfer(from: stream, to: remote)
    }

    private func relayGet(_ request: GetRequest, from agent: String, stream: AdminStream) async throws {
        let remote = try await controller.agents.connectedSession(agent).mux.open(.get(request))
        defer { remote.close() }
        try await StreamRelay.relayTransfer(from: remote, to: stream)
    }

    /// Provisions a VM and streams its timeline events to the CLI: until it started, or with `wait` until it is
    /// ready or failed. Then the record. The CLI leaving does not stop the VM's boot being followed.
    private func createVM(wait: Bool, name: String, stream: AdminStream, _ create: () async throws -> VMRecord) async throws {
        try await followingVM(name, until: wait ? [.vmReady, .vmFailed] : [.vmStarted], stream: stream, create)
    }

    /// Runs `operation` on a VM and streams the VM's events until one of `ends`, then its record.
    private func followingVM(_ name: String, until ends: Set<EventKind>, stream: AdminStream,
                             _ operation: () async throws -> VMRecord) async throws {
        let live = controller.events.follow()
        defer { live.stop() }
        let record = try await operation()
        for await event in live.events where event.agent == name {
            try await stream.send(.events([event]))
            if ends.contains(event.kind) { break }
        }
        try await stream.send(.vms([try controller.store.vm(name) ?? record]))
    }

    /// Replays stored events, then (if following) streams new ones, with no gap and no repeat.
    private func streamEvents(_ query: EventQuery, stream: AdminStream) async throws {
        let events = controller.events
        let send: @Sendable ([Event]) async throws -> Void = { try await ListingParts.sendParts($0, as: AdminStreamMessage.events, on: stream) }
        guard query.follow else {
            try await events.stream(after: query.afterSeq, since: query.since, fleet: query.fleet, follow: false, send: send)
            try await stream.send(.ok("end of events"))
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The CLI ends a follow by closing the connection; notice that.
            group.addTask { _ = try await stream.next() }
            group.addTask {
                try await events.stream(after: query.afterSeq, since: query.since, fleet: query.fleet, follow: true, send: send)
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// Listings go out in parts bounded by bytes, never as one message: a frame holds 1 MiB, and a store may
/// hold 100,000 events or 10,000 jobs, each carrying output.
enum ListingParts {
    /// The most JSON one part carries.
    static let partBytes = 256 << 10
    private static let encoder = JSONEncoder()

    /// Sends `items` in parts, then `ok` with their count.
    static func send<T: Encodable>(_ items: [T], as wrap: ([T]) -> AdminStreamMessage, noun: String, on stream: AdminStream) async throws {
        try await sendParts(items, as: wrap, on: stream)
        try await stream.send(.ok("\(items.count) \(noun)"))
    }

    /// Sends `items` in parts of at most ``partBytes`` each (an item larger than that goes alone).
    static func sendParts<T: Encodable>(_ items: [T], as wrap: ([T]) -> AdminStreamMessage, on stream: AdminStream) async throws {
        var part: [T] = []
        var bytes = 0
        for item in items {
            let size = ((try? encoder.encode(item))?.count ?? 0) + 1
            if !part.isEmpty, bytes + size > partBytes {
                try await stream.send(wrap(part))
                part.removeAll(keepingCapacity: true)
                bytes = 0
            }
            part.append(item)
            bytes += size
        }
        if !part.isEmpty { try await stream.send(wrap(part)) }
    }

    /// A job as listed: its command cut to a readable length (an argv may be as large as a request).
    static func shortened(_ job: JobRecord) -> JobRecord {
        var job = job
        var budget = 4096
        job.argv = job.argv.prefix { argument in
            defer { budget -= argument.utf8.count }
            return budget > 0
        }.map { String($0.prefix(4096)) }
        return job
    }
}
