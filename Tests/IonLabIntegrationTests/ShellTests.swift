import CIonLabSys
import Foundation
import NIOConcurrencyHelpers
import Testing

/// A program on a pseudo-terminal this test holds the master side of, as a person at a terminal would run
/// it: what it prints is read as it comes, keys are written, and the window can be resized.
final class TerminalDriver: @unchecked Sendable {
    let pid: pid_t
    let master: Int32
    private let output = NIOLockedValueBox<[UInt8]>([])
    private var reader: Thread?

    init(_ argv: [String], environment: [String: String], rows: UInt16 = 24, columns: UInt16 = 80) throws {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        env["TERM"] = "xterm"
        var pid: pid_t = 0, master: Int32 = -1
        let pointers = argv.map { strdup($0) }, envPointers = env.map { strdup("\($0.key)=\($0.value)") }
        defer { (pointers + envPointers).forEach { free($0) } }
        let rc = (pointers.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { args in
            (envPointers.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { envp in
                ionlab_spawn_pty(args.baseAddress!, envp.baseAddress!, nil, rows, columns, &pid, &master)
            }
        }
        guard rc == 0 else { throw LabError("cannot spawn \(argv[0]) on a terminal: \(String(cString: strerror(rc)))") }
        self.pid = pid
        self.master = master
        let output = self.output
        let fd = master
        reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                output.withLockedValue { $0 += buffer[0..<count] }
            }
        }
        reader?.start()
    }

    func type(_ text: String) { _ = text.utf8CString.withUnsafeBufferPointer { write(master, $0.baseAddress, $0.count - 1) } }

    var text: String { String(decoding: output.withLockedValue { $0 }, as: UTF8.self) }

    /// Waits until the output holds `expected` (after `from` characters); returns where it ends.
    @discardableResult
    func expect(_ expected: String, after offset: String.Index? = nil, timeout: Double = 20) async throws -> String.Index {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = self.text
            let start = offset.map { min($0, text.endIndex) } ?? text.startIndex
            if let range = text.range(of: expected, range: start..<text.endIndex) { return range.upperBound }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LabError("no '\(expected)' on the terminal within \(timeout)s; it shows:\n\(text.suffix(2000))")
    }

    func resize(rows: UInt16, columns: UInt16) { _ = ionlab_set_window_size(master, rows, columns) }

    /// The program's exit status, once it exits.
    func exitStatus(timeout: Double = 20) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                var code: Int32 = 0
                return ionlab_decode_wait_status(status, &code) == 1 ? code : -1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        throw LabError("the program on the terminal did not exit within \(timeout)s")
    }

    deinit {
        kill(pid, SIGKILL)
        close(master)
    }
}

/// `ionlab shell` and `exec -t` on a real pseudo-terminal, against a real controller and agent.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ShellTests {
    @Test func anInteractiveShellSeesResizesTakesCtrlCAndReturnsItsStatus() async throws {
        let lab = try await HostilePeerTests.servingLab()
        defer { lab.tearDown() }
        let shell = try TerminalDriver(["\(Lab.binaries)/ionlab", "shell", "agent1"], environment: ["IONLAB_STATE_DIR": lab.stateDir])
        shell.type("echo READY-$((40+2)) TERM=$TERM\r")
        var at = try await shell.expect("READY-42 TERM=xterm")
        shell.type("stty size\r")
        at = try await shell.expect("24 80", after: at)
        // The window changes: the remote terminal follows, and its programs are told.
        shell.resize(rows: 41, columns: 101)
        // The new size travels beside the typed input, not in order with it: ask until the remote side has it.
        var resized: String.Index?
        for _ in 1...20 where resized == nil {
            shell.type("stty size\r")
            resized = try? await shell.expect("41 101", after: at, timeout: 1)
        }
        at = try #require(resized, "the remote terminal never took the new size: \(shell.text.suffix(300))")
        // A full-screen program takes the alternate screen and gives it back.
        shell.type("less /etc/hostname\r")
        at = try await shell.expect("\u{1b}[?1049h", after: at)
        shell.type("q")
        at = try await shell.expect("\u{1b}[?1049l", after: at)
        // Ctrl-C reaches the remote sleep as SIGINT, not this process.
        shell.type("sleep 30; echo SLEPT\r")
        try await Task.sleep(for: .milliseconds(700))
        shell.type("\u{03}")
        shell.type("echo CODE-$?\r")
        at = try await shell.expect("CODE-130", after: at, timeout: 10)
        #expect(!shell.text[at...].contains("SLEPT"))
        shell.type("exit 7\r")
        #expect(try await shell.exitStatus() == 7)
    }

    /// The local terminal comes back out of raw mode when the remote command ends, and `exec -t` returns
    /// the remote status.
    @Test func theLocalTerminalIsRestoredAndExecTReturnsTheStatus() async throws {
        let lab = try await HostilePeerTests.servingLab()
        defer { lab.tearDown() }
        let script = "stty -a | grep -q -- ' icanon' && echo COOKED-BEFORE; \(Lab.binaries)/ionlab exec -t agent1 -- sh -c 'stty -a; exit 3'; "
            + "echo STATUS=$?; stty -a | grep -q -- ' icanon' && stty -a | grep -q -- ' echo ' && echo COOKED-AFTER"
        let terminal = try TerminalDriver(["sh", "-c", script], environment: ["IONLAB_STATE_DIR": lab.stateDir])
        var at = try await terminal.expect("COOKED-BEFORE")
        at = try await terminal.expect("STATUS=3", after: at)
        try await terminal.expect("COOKED-AFTER", after: at)
        #expect(try await terminal.exitStatus() == 0)
    }

    @Test func withoutATerminalAShellSaysSoAndRunsAsExec() async throws {
        let lab = try await HostilePeerTests.servingLab()
        defer { lab.tearDown() }
        let result = await lab.run(["shell", "agent1", "--", "sh", "-c", "read line; echo got $line; exit 5"], stdin: "hello\n")
        #expect(result.status == 5, "\(result.stderr)")
        #expect(result.stdout == "got hello\n")
        #expect(result.stderr.contains("stdin is not a terminal: running without one"), "\(result.stderr)")
        let unknown = await lab.run(["shell", "nosuchvm", "--", "true"], stdin: "")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no agent named 'nosuchvm'"), "\(unknown.stderr)")
    }

    /// Input that reaches the agent after the command exited is dropped, as a closed pipe drops it: the job
    /// still ends with its own status (it once ended as a failure, "Already closed", about one run in two).
    @Test func inputArrivingAfterTheCommandExitedIsDropped() async throws {
        let lab = try await HostilePeerTests.servingLab()
        defer { lab.tearDown() }
        let input = "hello\n" + String(repeating: "more input the command never reads\n", count: 2000)
        for _ in 0..<8 {
            let result = await lab.run(["exec", "-i", "agent1", "--", "sh", "-c", "read line; echo got $line; exit 5"], stdin: input)
            #expect(result.status == 5 && result.stdout == "got hello\n", "\(result.stderr)")
        }
    }
}
