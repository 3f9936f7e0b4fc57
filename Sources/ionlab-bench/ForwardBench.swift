import ArgumentParser
import Foundation
import IonLabConfig

/// A port forward against `ssh -L` on loopback, side by side in one run (docs/targets.md): bulk throughput
/// to a sink, and the time to set up a connection (connect, one byte there and back) over a channel that
/// is already open. Both forwards reach the same in-process servers; a direct connection is the baseline.
struct ForwardBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Port forward throughput and connection setup: ionlab forward vs ssh -L on 127.0.0.1.")

    @Option(help: "Connections per method for the setup time.")
    var connections = 300

    @Option(help: "MiB per bulk transfer.")
    var megabytes = 1024

    @Option(help: "Bulk transfers per method (the median counts).")
    var transfers = 3

    func run() async throws {
        try Binaries.ensure()
        let work = try Workspace.create()
        var processes: [Shell.Child] = []
        defer { Workspace.tearDown(work, processes) }

        print("starting an ionlab controller and agent, an sshd, a sink and an echo server, on 127.0.0.1…")
        let sink = try LoopbackServer.start(.sink)
        let echo = try LoopbackServer.start(.echo)
        let lab = try await LocalLab.start(in: work, processes: &processes)
        let ssh = try SSHServer.start(in: work, processes: &processes)
        defer { ssh.stop() }

        let base = 40_000 + Int(getpid() % 10_000)
        let ionlab = Binaries.path("ionlab")
        processes.append(try Shell.background(ionlab, ["forward", "bench", "\(base):\(sink.port)"], environment: lab.environment, log: "\(work)/f1.log"))
        processes.append(try Shell.background(ionlab, ["forward", "bench", "\(base + 1):\(echo.port)"], environment: lab.environment, log: "\(work)/f2.log"))
        processes.append(try Shell.background("/usr/bin/ssh", ssh.arguments + ["-N", "-o", "ExitOnForwardFailure=yes",
                                                                             "-L", "127.0.0.1:\(base + 2):127.0.0.1:\(sink.port)",
                                                                             "-L", "127.0.0.1:\(base + 3):127.0.0.1:\(echo.port)"],
                                              log: "\(work)/ssh.log"))
        for port in [base + 1, base + 3] {
            try await waitFor("the forward on \(port)") { (try? LoopbackClient.roundTrip(port: port)) != nil }
        }

        let methods: [(String, sink: Int, echo: Int)] = [
            ("direct (no forward)", sink.port, echo.port),
            ("ionlab forward", base, base + 1),
            ("ssh -L", base + 2, base + 3),
        ]
        var setup: [String: Samples] = [:]
        var throughput: [String: Double] = [:]
        for (name, sinkPort, echoPort) in methods {
            var samples = Samples()
            _ = try LoopbackClient.roundTrip(port: echoPort)  // warm-up
            for _ in 0..<connections { samples.add(try LoopbackClient.roundTrip(port: echoPort)) }
            setup[name] = samples
            var rates: [Double] = []
            for _ in 0..<transfers { rates.append(try LoopbackClient.bulk(port: sinkPort, megabytes: megabytes)) }
            throughput[name] = rates.sorted()[rates.count / 2]
        }

        print("")
        print("connection setup: connect, 1 byte there and back     median      p90   (ms, n)")
        for (name, _, _) in methods {
            let samples = setup[name]!
            print("  " + name.padding(toLength: 50, withPad: " ", startingAt: 0)
                  + String(format: " %8.3f %8.3f   (%d)", samples.median * 1000, samples.p90 * 1000, samples.values.count))
        }
        print("")
        print(String(format: "throughput, %d MiB half-closed to a sink (median of %d)", megabytes, transfers))
        for (name, _, _) in methods {
            print("  " + name.padding(toLength: 50, withPad: " ", startingAt: 0) + String(format: " %8.0f MiB/s", throughput[name]!))
        }
        print("")
        print("targets (docs/targets.md):")
        let ionlabSetup = setup["ionlab forward"]!.median, sshSetup = setup["ssh -L"]!.median
        let ionlabRate = throughput["ionlab forward"]!, sshRate = throughput["ssh -L"]!
        print(String(format: "  %@ forward throughput ≥ ssh -L                        %7.2f× (target 1×)", ionlabRate >= sshRate ? "PASS" : "MISS", ionlabRate / sshRate))
        print(String(format: "  %@ connection set up in under 1 ms over an open channel %6.3f ms", ionlabSetup < 0.001 ? "PASS" : "MISS", ionlabSetup * 1000))
        print(String(format: "  (ssh -L sets one up in %.3f ms)", sshSetup * 1000))
    }
}

/// A server on 127.0.0.1 in this process, on threads: a sink that answers each connection with the count
/// of bytes it read once the client half-closes, or an echo.
struct LoopbackServer {
    enum Kind { case sink, echo }
    let port: Int

    static func start(_ kind: Kind) throws -> LoopbackServer {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = LoopbackClient.address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 512) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else { throw BenchError("cannot listen on 127.0.0.1") }
        Thread.detachNewThread {
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { continue }
                Thread.detachNewThread { serve(connection, kind) }
            }
        }
        return LoopbackServer(port: Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func serve(_ connection: Int32, _ kind: Kind) {
        defer { close(connection) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var total: UInt64 = 0
        while true {
            let count = recv(connection, buffer, 1 << 20, 0)
            guard count > 0 else { break }
            total += UInt64(count)
            if kind == .echo, !LoopbackClient.sendAll(connection, buffer, count) { return }
        }
        if kind == .sink {
            var answer = total.bigEndian
            _ = LoopbackClient.sendAll(connection, &answer, 8)
        }
    }
}

/// Blocking clients for the benchmark, timed with the monotonic clock.
enum LoopbackClient {
    static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return address
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            throw BenchError("cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }

    static func accepts(port: Int) -> Bool {
        guard let fd = try? connect(port: port) else { return false }
        close(fd)
        return true
    }

    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Bool {
        var sent = 0
        while sent < count {
            let written = send(fd, bytes + sent, count - sent, Int32(MSG_NOSIGNAL))
            guard written > 0 else { return false }
            sent += written
        }
        return true
    }

    /// Seconds from connect to the echo of one byte.
    static func roundTrip(port: Int) throws -> Double {
        let start = ContinuousClock.now
        let fd = try connect(port: port)
        defer { close(fd) }
        var byte: UInt8 = 42
        guard sendAll(fd, &byte, 1), recv(fd, &byte, 1, 0) == 1 else { throw BenchError("no echo through 127.0.0.1:\(port)") }
        return (ContinuousClock.now - start).seconds
    }

    /// MiB/s of `megabytes` sent, half-closed, and acknowledged by the sink's count.
    static func bulk(port: Int, megabytes: Int) throws -> Double {
        let block = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { block.deallocate() }
        var generator = SystemRandomNumberGenerator()
        for offset in stride(from: 0, to: 1 << 20, by: 8) { block.storeBytes(of: generator.next() as UInt64, toByteOffset: offset, as: UInt64.self) }
        let start = ContinuousClock.now
        let fd = try connect(port: port)
        defer { close(fd) }
        for _ in 0..<megabytes where !sendAll(fd, block, 1 << 20) { throw BenchError("the transfer through 127.0.0.1:\(port) broke") }
        shutdown(fd, Int32(SHUT_WR))
        var count: UInt64 = 0
        var received = 0
        while received < 8 {
            let got = withUnsafeMutableBytes(of: &count) { recv(fd, $0.baseAddress! + received, 8 - received, 0) }
            guard got > 0 else { throw BenchError("the sink behind 127.0.0.1:\(port) did not answer") }
            received += got
        }
        guard UInt64(bigEndian: count) == UInt64(megabytes) << 20 else {
            throw BenchError("the sink behind 127.0.0.1:\(port) counted \(UInt64(bigEndian: count)) bytes of \(megabytes) MiB")
        }
        return Double(megabytes) / (ContinuousClock.now - start).seconds
    }
}
