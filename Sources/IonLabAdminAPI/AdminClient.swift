import Foundation
import IonLabAgentProtocol
import IonLabSpec
import IonLabWire
import NIOCore
import NIOPosix

/// The CLI's typed client of the admin socket: each method sends one request and returns its reply as a
/// value, or as an async sequence for replies that come as they happen.
public struct AdminClient: Sendable {
    let mux: MuxConnection<AdminClientRole>

    /// Connects to the controller's admin socket, says hello, runs `body`, and closes.
    public static func with<R: Sendable>(socket: String, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                                         _ body: @Sendable @escaping (AdminClient) async throws -> R) async throws -> R {
        let channel: NIOAsyncChannel<Frame, Frame>
        do {
            channel = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: socket) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            throw AdminError("the controller is not running (nothing answers at \(socket)); start it with `ionlab serve`")
        }
        return try await channel.executeThenClose { inbound, outbound in
            let mux = MuxConnection<AdminClientRole>(writer: outbound, side: .client)
            try await mux.sendControl(.hello(Hello(role: .admin, software: "ionlab cli")))
            var frames = inbound.makeAsyncIterator()
            guard let first = try await frames.next(), case .control(.welcome) = try mux.route(first) else {
                throw AdminError("the controller at \(socket) did not answer the hello")
            }
            // The request runs in a task of its own; this one routes the controller's frames to its streams
            // until the request is done (then the connection is closed, which ends the reading) or the
            // controller goes away (which fails the request's streams).
            return try await withThrowingTaskGroup(of: R.self) { group in
                group.addTask {
                    defer { channel.channel.close(promise: nil) }
                    return try await body(AdminClient(mux: mux))
                }
                do {
                    while let frame = try await frames.next() { _ = try mux.route(frame) }
                    mux.fail(AdminError("the controller closed the connection"))
                } catch {
                    mux.fail(AdminError("lost the connection to the controller: \(Format.error(error))"))
                }
                guard let result = try await group.next() else { throw AdminError("lost the connection to the controller") }
                return result
            }
        }
    }

    /// True if a controller answers on the admin socket.
    public static func isServing(socket: String, group: EventLoopGroup) async -> Bool {
        guard let channel = try? await ClientBootstrap(group: group).connect(unixDomainSocketPath: socket).get() else {
            return false
        }
        try? await channel.close()
        return true
    }

    /// Opens a request's stream.
    func open(_ request: AdminRequest) async throws -> AdminStream {
        try await mux.open(request)
    }

    // MARK: Listings

    /// Every agent the controller knows.
    public func agents() async throws -> [AgentStatus] {
        try await collect(.listAgents) { if case .agents(let part) = $0 { part } else { nil } }
    }

    /// Jobs from the store, newest first.
    public func jobs(agent: String?, limit: Int) async throws -> [JobRecord] {
        try await collect(.jobs(agent: agent, limit: limit)) { if case .jobs(let part) = $0 { part } else { nil } }
    }

    /// Every VM the controller provisioned.
    public func vms() async throws -> [VMRecord] {
        try await collect(.vmList) { if case .vms(let part) = $0 { part } else { nil } }
    }

    /// The VMs of one fleet (or of all), with their agents' state.
    public func fleetStatus(_ fleet: String?) async throws -> [VMStatus] {
        try await collect(.fleetStatus(name: fleet)) { if case .fleetStatus(let part) = $0 { part } else { nil } }
    }

    /// A VM's snapshots, oldest first.
    public func snapshots(of vm: String) async throws -> [SnapshotInfo] {
        try await collect(.vmSnapshot(name: vm, action: .list)) { if case .snapshots(let part) = $0 { part } else { nil } }
    }

    /// Every forward the controller holds.
    public func forwards() async throws -> [ForwardRecord] {
        try await collect(.forwards) { if case .forwards(let part) = $0 { part } else { nil } }
    }

    /// A listing's parts (each read by `part`) until `ok`.
    private func collect<T: Sendable>(_ request: AdminRequest, _ part: @escaping @Sendable (AdminStreamMessage) -> [T]?) async throws -> [T] {
        var items: [T] = []
        for try await chunk in Replies(try await open(request), request: request, { message in
            if let chunk = part(message) { return .more(chunk) }
            if case .ok = message { return .end([]) }
            return nil
        }) {
            items.append(chunk)
        }
        return items
    }

    // MARK: Single replies

    public func createToken(name: String, endpoints: [String], ttlSeconds: Double?) async throws -> TokenGrant {
        let request = AdminRequest.createToken(name: name, endpoints: endpoints, ttlSeconds: ttlSeconds)
        guard case .token(let grant) = try await single(request) else { throw AdminError.unexpectedReply(to: request) }
        return grant
    }

    /// Revokes an agent; returns the controller's line.
    public func revoke(_ name: String) async throws -> String {
        try await confirmation(.revoke(name: name))
    }

    /// One VM in full.
    public func vmInfo(_ name: String) async throws -> VMInfo {
        let request = AdminRequest.vmInfo(name: name)
        guard case .vmInfo(let info) = try await single(request) else { throw AdminError.unexpectedReply(to: request) }
        return info
    }

    /// Where a VM's graphical console listens, and its password.
    public func display(of vm: String) async throws -> DisplayInfo {
        let request = AdminRequest.vmDisplay(name: vm)
        guard case .display(let info) = try await single(request) else { throw AdminError.unexpectedReply(to: request) }
        return info
    }

    /// A VM's screen as a PNG.
    public func screenshot(of vm: String) async throws -> (header: ScreenshotHeader, png: Data) {
        let request = AdminRequest.vmScreenshot(name: vm)
        let stream = try await open(request)
        defer { stream.close() }
        let first = try await stream.nextMessage()
        if case .failure(let failure) = first { throw failure }
        guard case .screenshot(let header) = first, (1...ScreenshotHeader.maximumBytes).contains(header.bytes) else {
            throw AdminError.unexpectedReply(to: request)
        }
        return (header, try await Self.data(of: header.bytes, on: stream, request: request, what: "the screenshot"))
    }

    /// Presses keys, types or waits for a text on a VM's screen, through the hypervisor.
    public func desktop(_ input: DesktopInput, on vm: String) async throws -> DesktopResult {
        let request = AdminRequest.vmDesktop(name: vm, input: input)
        guard case .desktop(let result) = try await single(request) else { throw AdminError.unexpectedReply(to: request) }
        return result
    }

    /// A fleet's report, a self-contained HTML page.
    public func report(of fleet: String) async throws -> Data {
        let request = AdminRequest.report(fleet: fleet)
        let stream = try await open(request)
        defer { stream.close() }
        let first = try await stream.nextMessage()
        if case .failure(let failure) = first { throw failure }
        guard case .document(let header) = first, (1...DocumentHeader.maximumBytes).contains(header.bytes) else {
            throw AdminError.unexpectedReply(to: request)
        }
        return try await Self.data(of: header.bytes, on: stream, request: request, what: "the report")
    }

    /// Exactly `count` bytes of data, as a header announced them.
    private static func data(of count: Int, on stream: AdminStream, request: AdminRequest, what: String) async throws -> Data {
        var data = Data()
        while data.count < count {
            switch try await stream.next() {
            case .data(_, let bytes):
                guard data.count + bytes.readableBytes <= count else { throw AdminError("\(what) is longer than announced") }
                data.append(contentsOf: bytes.readableBytesView)
            case .message(.failure(let failure)):
                throw failure
            case .message:
                throw AdminError.unexpectedReply(to: request)
            }
        }
        return data
    }

    /// Takes a snapshot; returns the controller's line.
    public func createSnapshot(of vm: String, named name: String, description: String?) async throws -> String {
        try await confirmation(.vmSnapshot(name: vm, action: .create(name: name, description: description)))
    }

    /// Deletes a snapshot; returns the controller's line.
    public func deleteSnapshot(of vm: String, named name: String) async throws -> String {
        try await confirmation(.vmSnapshot(name: vm, action: .delete(name: name)))
    }

    /// Opens a forward that the controller keeps; returns its line.
    public func keepForward(_ rule: ForwardRule) async throws -> String {
        try await confirmation(.forward(rule, keep: true))
    }

    /// Closes a forward; returns the controller's line.
    public func closeForward(_ key: ForwardRule.Key) async throws -> String {
        try await confirmation(.unforward(key))
    }

    /// Destroys a VM; returns the controller's line.
    public func destroyVM(_ name: String) async throws -> String {
        try await confirmation(.vmDestroy(name: name))
    }

    private func confirmation(_ request: AdminRequest) async throws -> String {
        guard case .ok(let line) = try await single(request) else { throw AdminError.unexpectedReply(to: request) }
        return line
    }

    /// A request with one reply message; a `failure` reply is thrown.
    private func single(_ request: AdminRequest) async throws -> AdminStreamMessage {
        let stream = try await open(request)
        defer { stream.close() }
        let reply = try await stream.nextMessage()
        if case .failure(let failure) = reply { throw failure }
        return reply
    }

    // MARK: Streams

    /// Stored events that match, then (with `follow`) new ones as they happen.
    public func events(_ query: EventQuery) async throws -> Replies<Event> {
        let request = AdminRequest.events(query)
        return Replies(try await open(request), request: request) { message in
            switch message {
            case .events(let events): .more(events)
            case .ok: .end([])
            default: nil
            }
        }
    }

    /// Runs a command on many agents at once: one line per agent as results arrive.
    public func execAll(_ spec: ExecSpec, target: ExecTarget) async throws -> Replies<FanoutLine> {
        let request = AdminRequest.execAll(spec: spec, target: target)
        return Replies(try await open(request), request: request) { message in
            switch message {
            case .fanoutResult(let line): .more([line])
            case .ok: .end([])
            default: nil
            }
        }
    }

    /// Creates a VM: its timeline as it happens, then its record.
    public func createVM(_ request: VMCreateRequest) async throws -> Replies<RequestProgress<VMRecord>> {
        try await provisioning(.vmCreate(request))
    }

    /// Creates `name` like `source`: its timeline as it happens, then its record.
    public func cloneVM(source: String, name: String, wait: Bool) async throws -> Replies<RequestProgress<VMRecord>> {
        try await provisioning(.vmClone(source: source, name: name, wait: wait))
    }

    /// Stops, starts, restarts, suspends or resumes a VM: its events as they happen, then its record.
    public func power(_ action: PowerAction, vm name: String, timeoutSeconds: Double?, wait: Bool) async throws -> Replies<RequestProgress<VMRecord>> {
        try await provisioning(.vmPower(name: name, action: action, timeoutSeconds: timeoutSeconds, wait: wait))
    }

    /// Reverts a VM to a snapshot: its events as they happen (until its agent is back, with `wait`), then its record.
    public func revert(vm name: String, to snapshot: String, wait: Bool) async throws -> Replies<RequestProgress<VMRecord>> {
        try await provisioning(.vmSnapshot(name: name, action: .revert(name: snapshot, wait: wait)))
    }

    private func provisioning(_ request: AdminRequest) async throws -> Replies<RequestProgress<VMRecord>> {
        Replies(try await open(request), request: request) { message in
            switch message {
            case .events(let events): .more(events.map(RequestProgress.event))
            case .vms(let records): records.first.map { .end([.finished($0)]) }
            default: nil
            }
        }
    }

    /// Brings a fleet up: its events as they happen, then the report.
    public func fleetUp(_ request: FleetUpRequest) async throws -> Replies<RequestProgress<FleetReport>> {
        let request = AdminRequest.fleetUp(request)
        return Replies(try await open(request), request: request) { message in
            switch message {
            case .events(let events): .more(events.map(RequestProgress.event))
            case .fleetReport(let report): .end([.finished(report)])
            default: nil
            }
        }
    }

    /// Takes a fleet down: its events as they happen, then the controller's line.
    public func fleetDown(_ name: String) async throws -> Replies<RequestProgress<String>> {
        let request = AdminRequest.fleetDown(name: name)
        return Replies(try await open(request), request: request) { message in
            switch message {
            case .events(let events): .more(events.map(RequestProgress.event))
            case .ok(let line): .end([.finished(line)])
            default: nil
            }
        }
    }

    /// Opens a forward that lasts while the returned notices are read: the forward as opened, then a line
    /// for each connection that failed. The forward closes when the connection to the controller does.
    public func forward(_ rule: ForwardRule) async throws -> (opened: ForwardRecord, notices: Replies<String>) {
        let request = AdminRequest.forward(rule, keep: false)
        let stream = try await open(request)
        let first: AdminStreamMessage
        do {
            first = try await stream.nextMessage()
        } catch {
            stream.close()
            throw error
        }
        switch first {
        case .forwards(let records) where records.count == 1:
            return (records[0], Replies(stream, request: request) { message in
                if case .notice(let line) = message { .more([line]) } else { nil }
            })
        case .failure(let failure):
            stream.close()
            throw failure
        default:
            stream.close()
            throw AdminError.unexpectedReply(to: request)
        }
    }

    /// Starts a job on an agent, interactively: its output as it comes, and its controls.
    public func exec(_ spec: ExecSpec, on agent: String) async throws -> ExecStream<AdminStreamMessage> {
        ExecStream(try await open(.exec(agent: agent, spec: spec)))
    }

    /// Asks to upload into an agent's machine; returns the stream to send the tree on once the agent is
    /// ready, with the path it resolved. A refusal is thrown.
    public func upload(_ request: PutRequest, to agent: String) async throws -> (stream: AdminStream, path: String) {
        let stream = try await open(.put(agent: agent, request: request))
        switch try await stream.nextCarried() {
        case .putReady(let path): return (stream, path)
        case .failure(let failure): throw failure
        case let other: throw WireError.unexpected("\(other.name) before an upload")
        }
    }

    /// Asks to download from an agent's machine; returns the stream the tree arrives on and its first entry.
    /// A refusal is thrown.
    public func download(_ request: GetRequest, from agent: String) async throws -> (stream: AdminStream, root: TreeEntry) {
        let stream = try await open(.get(agent: agent, request: request))
        switch try await stream.nextCarried() {
        case .entry(let root): return (stream, root)
        case .failure(let failure): throw failure
        case let other: throw WireError.unexpected("\(other.name) at the start of a download")
        }
    }
}

/// What a long request reports while it runs, and how it ends.
public enum RequestProgress<Result: Sendable>: Sendable {
    case event(Event)
    case finished(Result)
}

/// The replies to one request as an async sequence: its elements as they come, until the reply that ends
/// it. A `failure` reply is thrown, and so is a reply that does not belong to the request. Leaving the loop
/// early closes the request's stream.
public struct Replies<Element: Sendable>: AsyncSequence, Sendable {
    /// How a reply reads: elements and more to come, or the last elements.
    public enum Reading: Sendable {
        case more([Element])
        case end([Element])
    }

    let stream: AdminStream
    let request: AdminRequest
    let read: @Sendable (AdminStreamMessage) -> Reading?

    init(_ stream: AdminStream, request: AdminRequest, _ read: @escaping @Sendable (AdminStreamMessage) -> Reading?) {
        self.stream = stream
        self.request = request
        self.read = read
    }

    public func makeAsyncIterator() -> Iterator { Iterator(replies: self) }

    /// Ends the request early (a follow the user stopped).
    public func close() { stream.close() }

    public struct Iterator: AsyncIteratorProtocol {
        let replies: Replies
        /// Elements read and not yet returned, last first.
        var pending: [Element] = []
        var ended = false

        public mutating func next() async throws -> Element? {
            while pending.isEmpty {
                if ended { return nil }
                let message: AdminStreamMessage
                do {
                    message = try await replies.stream.nextMessage()
                } catch {
                    replies.stream.close()
                    throw error
                }
                if case .failure(let failure) = message {
                    replies.stream.close()
                    throw failure
                }
                switch replies.read(message) {
                case .more(let elements):
                    pending = elements.reversed()
                case .end(let elements):
                    pending = elements.reversed()
                    ended = true
                    replies.stream.close()
                case nil:
                    replies.stream.close()
                    throw AdminError("unexpected \(message.name) in reply to \(replies.request.name)")
                }
            }
            return pending.popLast()
        }
    }
}

/// An admin client error, one line for the user.
public struct AdminError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func unexpectedReply(to request: AdminRequest) -> AdminError {
        AdminError("unexpected reply to \(request.name)")
    }
}

