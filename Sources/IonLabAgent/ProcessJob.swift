import CIonLabSys
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabConfig
import IonLabWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One running command: its own process group, its pipes, its timeout, and a bounded tail of its output.
///
/// The job outlives connections. While a stream is attached, output is forwarded with backpressure (the
/// pipes are not read faster than the controller consumes); while none is, output only feeds the tail.
final class ProcessJob: @unchecked Sendable {
    let spec: ExecSpec
    let pid: pid_t
    private let started = ContinuousClock.now
    private let lock = NIOLock()
    private var tail = OutputTail(limit: 8 << 10)
    /// What the process writes on descriptor 3, when it reports (bounded: the excess is dropped).
    private var reported = OutputTail(limit: ExecResult.reportLimit, keeping: .first)
    private var sink: AgentStream?
    private var outcome: ExecResult.Outcome = .completed
    /// The write end of the command's stdin, as a plain channel (nil without stdin), once ``run(group:)`` set it up.
    private let stdinReady: EventLoopPromise<Channel?>
    private var readers: [NIOAsyncChannel<ByteBuffer, Never>] = []
    /// The reader of descriptor 3, when the process reports.
    private var report: NIOAsyncChannel<ByteBuffer, Never>?
    private let finished: EventLoopPromise<ExecResult>

    var result: EventLoopFuture<ExecResult> { finished.futureResult }

    /// Spawns the process. Output starts flowing once ``run(group:)`` is called.
    init(spec: ExecSpec, group: EventLoopGroup) throws {
        self.spec = spec
        let spawned = try spec.terminal.map { try Self.spawnOnTerminal(spec, $0) } ?? Self.spawnWithPipes(spec)
        pid = spawned.pid
        (stdoutFD, stderrFD, stdinFD, reportFD, terminalFD) = (spawned.stdout, spawned.stderr, spawned.stdin, spawned.report, spawned.terminal)
        // Made only once the process runs: a promise that is never kept is a leak NIO stops on.
        finished = group.next().makePromise()
        stdinReady = group.next().makePromise()
    }

    /// A spawned process and this side's descriptors (-1 for none).
    private struct Spawned {
        var pid: pid_t
        var stdout: Int32
        var stderr: Int32 = -1
        var stdin: Int32 = -1
        var report: Int32 = -1
        var terminal: Int32 = -1
    }

    /// Spawns with pipes for stdout and stderr, and for stdin and the report when the spec asks.
    private static func spawnWithPipes(_ spec: ExecSpec) throws -> Spawned {
        var pipes = [[Int32]](repeating: [-1, -1], count: 4)
        defer { for pair in pipes { for fd in pair where fd >= 0 { close(fd) } } }
        for index in 0..<4 where (index == 0 && spec.stdin) || index == 1 || index == 2 || (index == 3 && spec.reports) {
            guard ionlab_pipe_cloexec(&pipes[index]) == 0 else { throw Failure("cannot create a pipe: \(String(cString: strerror(errno)))") }
        }
        let devNull = spec.stdin ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        var childPID: pid_t = 0
        let rc = CStringArray.with(spec.argv) { argv in
            CStringArray.with(environment(spec)) { envp in
                ionlab_spawn(argv, envp, spec.cwd, spec.stdin ? pipes[0][0] : devNull, pipes[1][1], pipes[2][1], pipes[3][1], &childPID)
            }
        }
        guard rc == 0 else { throw Failure("\(spec.argv.first ?? ""): \(String(cString: strerror(rc)))") }
        // Keep only the parent's ends; the deferred close releases the child's.
        var spawned = Spawned(pid: childPID, stdout: pipes[1][0], stderr: pipes[2][0])
        pipes[1][0] = -1
        pipes[2][0] = -1
        if spec.stdin { (spawned.stdin, pipes[0][1]) = (pipes[0][1], -1) }
        if spec.reports { (spawned.report, pipes[3][0]) = (pipes[3][0], -1) }
        return spawned
    }

    /// The agent's environment with the spec's entries, a PATH if it had none, and TERM for a terminal.
    private static func environment(_ spec: ExecSpec) -> [String] {
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in spec.env { environment[key] = value }
        if let terminal = spec.terminal { environment["TERM"] = terminal.term }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        return environment.map { "\($0.key)=\($0.value)" }
    }

    private var stdoutFD: Int32 = -1
    private var stderrFD: Int32 = -1
    private var stdinFD: Int32 = -1
    private var reportFD: Int32 = -1
    /// The pseudo-terminal's master, kept to change its size; -1 without a terminal.
    private var terminalFD: Int32 = -1

    /// Spawns on a new pseudo-terminal: the master is read as stdout, written as stdin (through its own
    /// descriptor each), and kept once more for resizing.
    private static func spawnOnTerminal(_ spec: ExecSpec, _ terminal: TerminalSpec) throws -> Spawned {
        var childPID: pid_t = 0
        var master: Int32 = -1
        let rc = CStringArray.with(spec.argv) { argv in
            CStringArray.with(environment(spec)) { envp in
                ionlab_spawn_pty(argv, envp, spec.cwd, terminal.rows, terminal.columns, &childPID, &master)
            }
        }
        guard rc == 0 else { throw Failure("\(spec.argv.first ?? ""): \(String(cString: strerror(rc)))") }
        let input = fcntl(master, F_DUPFD_CLOEXEC, 0), control = fcntl(master, F_DUPFD_CLOEXEC, 0)
        guard input >= 0, control >= 0 else {
            kill(-childPID, SIGKILL)
            throw Failure("cannot duplicate the terminal: \(String(cString: strerror(errno)))")
        }
        return Spawned(pid: childPID, stdout: master, stdin: input, terminal: control)
    }

    /// Changes the terminal's size; the kernel tells the foreground job (SIGWINCH). Nothing without a terminal.
    func resize(rows: UInt16, columns: UInt16) {
        let fd = lock.withLock { terminalFD }
        if fd >= 0, rows > 0, columns > 0 { _ = ionlab_set_window_size(fd, rows, columns) }
    }

    /// Sends output to `stream` from now on (nil detaches).
    func attach(_ stream: AgentStream?) {
        lock.withLock { sink = stream }
    }

    /// Reads the pipes, enforces the timeout, waits for the exit, and completes ``result``.
    func run(group: EventLoopGroup) async {
        var input: Channel?
        do {
            var all = [try await Self.pipeReader(stdoutFD, group: group)]
            stdoutFD = -1
            if stderrFD >= 0 {
                all.append(try await Self.pipeReader(stderrFD, group: group))
                stderrFD = -1
            }
            lock.withLock { readers = all }
            if reportFD >= 0 {
                report = try await Self.pipeReader(reportFD, group: group)
                reportFD = -1
            }
            if stdinFD >= 0 {
                input = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(output: stdinFD).get()
                stdinFD = -1
            }
        } catch {
            kill(-pid, SIGKILL)
        }
        stdinReady.succeed(input)
        let timeout = spec.timeoutSeconds.map { seconds in
            Task {
                try await Task.sleep(for: .clamped(seconds: seconds))
                self.terminate(because: .timedOut)
            }
        }
        let outputs = lock.withLock { self.readers }
        let pipes = outputs + (report.map { [$0] } ?? [])
        let exit = Task { [pid] in await Self.waitForExit(pid) }
        var forwarders = zip(outputs, [DataChannel.stdout, .stderr]).map { reader, channel in
            Task { await self.forward(reader, as: channel) }
        }
        if let report { forwarders.append(Task { await self.collectReport(report) }) }
        let status = await exit.value
        // Pipes still open after the exit are held by descendants; close them once they go quiet.
        let closer = Task { await self.closeIdlePipes(pipes) }
        for forwarder in forwarders { await forwarder.value }
        closer.cancel()
        stdinReady.futureResult.whenSuccess { $0?.close(promise: nil) }  // the command is gone; release its stdin
        complete(status: status)
        timeout?.cancel()
    }

    private func complete(status: Int32) {
        var code: Int32 = 0
        let kind = ionlab_decode_wait_status(status, &code)
        let result: ExecResult = lock.withLock {
            ExecResult(jobID: spec.jobID, outcome: outcome, exitCode: kind == 1 ? code : nil, signal: kind == 2 ? code : nil,
                       durationSeconds: (ContinuousClock.now - started).seconds, outputTail: tail.text,
                       report: spec.reports ? reported.text : nil)
        }
        finished.succeed(result)
    }

    /// Kills the whole process group: SIGTERM, then SIGKILL after a grace second, until none is left.
    func terminate(because reason: ExecResult.Outcome) {
        let first: Bool = lock.withLock {
            guard outcome == .completed else { return false }
            outcome = reason
            return true
        }
        guard first else { return }
        let group = pid
        kill(-group, SIGTERM)
        DetachedThread.start {
            usleep(1_000_000)
            for _ in 0..<50 {
                if kill(-group, SIGKILL) != 0 { break }
                usleep(20_000)
            }
        }
    }

    /// Writes stdin bytes (nil closes stdin).
    /// Writes stdin bytes (nil closes stdin). Input that arrives after the process closed its stdin, or
    /// exited, is dropped, as a pipe's reader going away drops it: it is no failure of the job.
    func writeStdin(_ bytes: ByteBuffer?) async throws {
        guard let channel = try await stdinReady.futureResult.get() else { return }
        do {
            if let bytes {
                try await channel.writeAndFlush(bytes)
            } else {
                try await channel.close()
            }
        } catch let error as ChannelError where error == .alreadyClosed || error == .ioOnClosedChannel || error == .outputClosed {
            return
        } catch let error as IOError where error.errnoCode == EPIPE {
            return
        }
    }

    private func forward(_ reader: NIOAsyncChannel<ByteBuffer, Never>, as channel: DataChannel) async {
        do {
            for try await chunk in reader.inbound {
                let stream: AgentStream? = lock.withLock {
                    tail.append(chunk)
                    lastOutput = .now
                    forwarding += 1
                    return sink
                }
                if let stream {
                    do {
                        try await stream.send(data: chunk, on: channel)
                    } catch {
                        attach(nil)  // the connection is gone; the job goes on
                    }
                }
                lock.withLock {
                    forwarding -= 1
                    lastOutput = .now
                }
            }
        } catch {
            // A closed pipe ends the output.
        }
    }

    /// Keeps what the process reports on descriptor 3; it goes back with the result, never as output.
    private func collectReport(_ reader: NIOAsyncChannel<ByteBuffer, Never>) async {
        do {
            for try await chunk in reader.inbound {
                lock.withLock {
                    reported.append(chunk)
                    lastOutput = .now
                }
            }
        } catch {
            // A closed pipe ends the report.
        }
    }

    private var lastOutput = ContinuousClock.now
    private var forwarding = 0

    /// After the exit: close the pipes once no output has arrived or been forwarded for a second.
    private func closeIdlePipes(_ pipes: [NIOAsyncChannel<ByteBuffer, Never>]) async {
        lock.withLock { lastOutput = .now }
        while !Task.isCancelled, pipes.contains(where: { $0.channel.isActive }) {
            try? await Task.sleep(for: .milliseconds(250))
            let idle = lock.withLock { forwarding == 0 && ContinuousClock.now - lastOutput > .seconds(1) }
            if idle {
                for pipe in pipes { try? await pipe.channel.close() }
            }
        }
    }

    private static func pipeReader(_ fd: Int32, group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, Never> {
        try await NIOPipeBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: false)
            .takingOwnershipOfDescriptor(input: fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, Never>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Waits for the process on a thread of its own, so no event loop or task thread blocks.
    private static func waitForExit(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            DetachedThread.start {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                continuation.resume(returning: status)
            }
        }
    }

    deinit {
        for fd in [stdoutFD, stderrFD, stdinFD, reportFD, terminalFD] where fd >= 0 { close(fd) }
    }
}

/// The last (or first) bytes of a job's output.
struct OutputTail {
    enum Keeping { case first, last }
    let limit: Int
    let keeping: Keeping
    private var bytes: [UInt8] = []

    init(limit: Int, keeping: Keeping = .last) {
        self.limit = limit
        self.keeping = keeping
    }

    mutating func append(_ buffer: ByteBuffer) {
        switch keeping {
        case .last:
            bytes.append(contentsOf: buffer.readableBytesView)
            if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
        case .first:
            bytes.append(contentsOf: buffer.readableBytesView.prefix(max(0, limit - bytes.count)))
        }
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// NUL-terminated C string arrays for exec.
enum CStringArray {
    static func with<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let array: [UnsafePointer<CChar>?] = pointers.map { UnsafePointer($0) } + [nil]
        return array.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
