import Foundation
import IonLabAgentProtocol
import IonLabConfig
import IonLabPictures
import IonLabProvision
import IonLabRFB
import IonLabSpec
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore

/// The `remote_desktop` probe: a viewer's session with the guest's VNC server, from outside, through the agent's
/// channel (a `connect` stream: a forward without a host port). It measures the handshake, takes a first frame,
/// opens a terminal and types a marker, and takes a second frame once the screen settles; the two frames are
/// kept as pictures. It passes when the first frame is not blank and the input changed the screen.
struct RemoteDesktopCheck {
    /// A first frame with less brightness variance than this is blank: one colour, perhaps with a cursor on it
    /// (a cursor adds about 2 on a 1280×800 screen; the desktop image's background, bar and cursor make 57).
    static let minimumVariance = 25.0
    /// The input must change at least this share of the screen (a terminal window and a line of text do,
    /// a blinking cursor does not).
    static let minimumChange = 0.005
    /// The whole check: a TCG guest may take seconds to start a terminal.
    static let deadline: Duration = .seconds(90)

    struct Result {
        var width: Int
        var height: Int
        var name: String
        var connectSeconds: Double
        var firstFrameSeconds: Double
        /// From the first key to the first update that changed pixels.
        var inputToScreenSeconds: Double?
        /// The first frame's brightness variance (``Picture/lumaVariance()``).
        var variance: Double
        var changedShare: Double
        var first: Picture
        var after: Picture
        /// The screen as it changed, for the session's animation: the first frame, then at most one every
        /// ``frameSpacing``, at most ``keptFrames``.
        var frames: [Picture]
    }

    static let keptFrames = 24
    static let frameSpacing: Duration = .milliseconds(200)

    let stream: AgentStream
    let terminalKeys: KeyChord
    let marker: String
    /// For a server that asks for VNC Authentication.
    var password: [UInt8]?

    func run() async throws -> Result {
        let started = ContinuousClock.now
        func since(_ instant: ContinuousClock.Instant) -> Double { (ContinuousClock.now - instant).seconds }
        let screen = RemoteScreen(password: password)
        defer { stream.close() }
        let reader = Task { await screen.read(stream) }
        defer { reader.cancel() }

        guard let desktop = await screen.changes.wait(for: { screen.readyOrFailed }, timeout: .seconds(30)) else {
            throw Failure("the guest's VNC server did not finish the handshake within 30 s")
        }
        let (width, height, name) = try desktop.get()
        let connectSeconds = since(started)
        try await send(RFBClient.updateRequest(width: width, height: height, incremental: false))
        guard let first = try await screen.nextUpdate(after: 0, within: .seconds(30)) else {
            throw Failure("no frame from the guest's VNC server within 30 s")
        }
        let firstFrameSeconds = since(started)

        // Input: the terminal's keys; then, once the terminal shows, the marker and Return. The screen is
        // watched all along, asking for each change as the last one arrives.
        let typed = ContinuousClock.now
        try await press(terminalKeys.keysyms)
        var frames = FrameKeeper(first: first.framebuffer)
        var inputToScreen = try await watch(screen, width: width, height: height, from: first.framebuffer, since: typed, keeping: &frames)
        for scalar in marker.unicodeScalars { try await press([scalar.value]) }
        try await press([0xFF0D])
        let settled = try await watch(screen, width: width, height: height, from: first.framebuffer, since: typed, keeping: &frames)
        inputToScreen = inputToScreen ?? settled
        let after = screen.latest.framebuffer ?? first.framebuffer
        return Result(width: width, height: height, name: name, connectSeconds: connectSeconds, firstFrameSeconds: firstFrameSeconds,
                      inputToScreenSeconds: inputToScreen, variance: first.framebuffer.lumaVariance(),
                      changedShare: Double(after.changedPixels(since: first.framebuffer)) / Double(width * height),
                      first: first.framebuffer, after: after, frames: frames.kept(ending: after))
    }

    /// Asks for each change as the last one arrives, until none comes for two seconds (or thirty passed);
    /// returns the seconds from `since` to the first update that made the screen differ from `reference`.
    private func watch(_ screen: RemoteScreen, width: Int, height: Int, from reference: Picture,
                       since: ContinuousClock.Instant, keeping frames: inout FrameKeeper) async throws -> Double? {
        let end = ContinuousClock.now + .seconds(30)
        var firstChange: Double?
        var seen = screen.latest.updates
        while ContinuousClock.now < end {
            try await send(RFBClient.updateRequest(width: width, height: height, incremental: true))
            guard let update = try await screen.nextUpdate(after: seen, within: .seconds(2)) else { break }
            seen = update.updates
            frames.offer(update.framebuffer)
            if firstChange == nil, update.framebuffer.changedPixels(since: reference) > 0 {
                firstChange = (ContinuousClock.now - since).seconds
            }
        }
        return firstChange
    }

    /// Presses the keys in order, then releases them in reverse.
    private func press(_ keysyms: [UInt32]) async throws {
        var bytes: [UInt8] = []
        for keysym in keysyms { bytes += RFBClient.key(keysym, down: true) }
        for keysym in keysyms.reversed() { bytes += RFBClient.key(keysym, down: false) }
        try await send(bytes)
    }

    private func send(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        try await stream.send(data: ByteBuffer(bytes: bytes), on: .content)
    }
}

/// The frames of a session worth keeping for its animation: the first, then at most one every
/// ``RemoteDesktopCheck/frameSpacing``, and the last.
struct FrameKeeper {
    private var frames: [Picture]
    private var lastKept = ContinuousClock.now

    init(first: Picture) {
        frames = [first]
    }

    mutating func offer(_ frame: Picture) {
        guard ContinuousClock.now - lastKept >= RemoteDesktopCheck.frameSpacing, frames.count < RemoteDesktopCheck.keptFrames - 1,
              frame != frames.last else { return }
        frames.append(frame)
        lastKept = .now
    }

    func kept(ending last: Picture) -> [Picture] {
        frames.last == last ? frames : frames + [last]
    }
}

/// Frames from a guest's VNC server, one whole screen on each ask: what a `screen_text` probe reads when its
/// source is the remote desktop.
final class RemoteFrames: Sendable {
    private let stream: AgentStream
    private let screen: RemoteScreen
    private let reader: Task<Void, Never>
    private let size: (width: Int, height: Int)

    private init(stream: AgentStream, screen: RemoteScreen, reader: Task<Void, Never>, size: (Int, Int)) {
        self.stream = stream
        self.screen = screen
        self.reader = reader
        self.size = size
    }

    static func open(_ stream: AgentStream, password: [UInt8]?) async throws -> RemoteFrames {
        let screen = RemoteScreen(password: password)
        let reader = Task { await screen.read(stream) }
        guard let desktop = await screen.changes.wait(for: { screen.readyOrFailed }, timeout: .seconds(30)) else {
            reader.cancel()
            stream.close()
            throw Failure("the guest's VNC server did not finish the handshake within 30 s")
        }
        do {
            let (width, height, _) = try desktop.get()
            return RemoteFrames(stream: stream, screen: screen, reader: reader, size: (width, height))
        } catch {
            reader.cancel()
            stream.close()
            throw error
        }
    }

    /// The whole screen now.
    func next() async throws -> Picture {
        let seen = screen.latest.updates
        try await stream.send(data: ByteBuffer(bytes: RFBClient.updateRequest(width: size.width, height: size.height, incremental: false)), on: .content)
        guard let update = try await screen.nextUpdate(after: seen, within: .seconds(30)) else {
            throw Failure("no frame from the guest's VNC server within 30 s")
        }
        return update.framebuffer
    }

    func close() {
        reader.cancel()
        stream.close()
    }
}

/// The viewer's side of one RFB connection: a reader task feeds the server's bytes to the client state machine
/// (answering the handshake itself), and waiters are woken on every change. Waiting never cancels a read,
/// which would end the stream.
final class RemoteScreen: @unchecked Sendable {
    let changes = ChangeSignal()
    private let lock = NIOLock()
    private var client: RFBClient
    private var desktop: (width: Int, height: Int, name: String)?
    private var failure: Error?
    private var updates = 0

    init(password: [UInt8]?) {
        client = RFBClient(password: password)
    }

    struct Snapshot {
        var updates: Int
        var framebuffer: Picture?
    }

    func read(_ stream: AgentStream) async {
        do {
            while true {
                switch try await stream.nextCarriedItem() {
                case .data(_, let bytes):
                    let answer: [UInt8] = try lock.withLock {
                        let step = try client.receive(bytes.readableBytesView)
                        for event in step.events {
                            switch event {
                            case .ready(let width, let height, let name): desktop = (width, height, name)
                            case .updated: updates += 1
                            case .bell: break
                            }
                        }
                        return step.send
                    }
                    if !answer.isEmpty { try await stream.send(data: ByteBuffer(bytes: answer), on: .content) }
                case .message(.failure(let failure)):
                    throw Failure("the guest's VNC server: \(failure.message)")
                case .message(.eof):
                    throw Failure("the guest's VNC server closed the connection")
                case .message(let other):
                    throw WireError.unexpected("\(other.name) on a remote-desktop connection")
                }
                changes.notify()
            }
        } catch {
            lock.withLock { if failure == nil { failure = error } }
            changes.notify()
        }
    }

    /// The desktop once the handshake is done, or the failure that ended it; nil meanwhile.
    var readyOrFailed: Result<(Int, Int, String), Error>? {
        lock.withLock {
            if let failure { return .failure(failure) }
            return desktop.map { .success(($0.width, $0.height, $0.name)) }
        }
    }

    var latest: Snapshot { lock.withLock { Snapshot(updates: updates, framebuffer: client.framebuffer) } }

    /// The first snapshot with more than `count` updates, nil if none came `within`; a failure is thrown.
    func nextUpdate(after count: Int, within: Duration) async throws -> (updates: Int, framebuffer: Picture)? {
        let outcome: Result<(Int, Picture), Error>? = await changes.wait(for: {
            self.lock.withLock {
                if let failure = self.failure { return .failure(failure) }
                guard self.updates > count, let framebuffer = self.client.framebuffer else { return nil }
                return .success((self.updates, framebuffer))
            }
        }, timeout: within)
        return try outcome.map { try $0.get() }
    }
}
