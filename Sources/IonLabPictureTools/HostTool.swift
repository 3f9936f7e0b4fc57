import Foundation

/// A program of the controller's host that ionlab hands pictures to (tesseract, apngasm): found on `PATH`, run
/// with its input on stdin, its output bounded and its time bounded. It never sees a shell.
struct HostTool: Sendable {
    /// The program's name, as its package installs it.
    let name: String
    /// The Debian package that has it, for the error when it is missing.
    let package: String

    struct Output: Sendable {
        var status: Int32
        var stdout: [UInt8]
        /// The last line it wrote on stderr.
        var lastError: String
    }

    /// The program's path, or an error naming the package to install.
    func path() throws(ToolError) -> String {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories + ["/usr/bin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ToolError("\(name) is not installed on the controller's host (Debian: apt install \(package))")
    }

    /// Runs the program to its end, or kills it after `timeout` seconds. Output beyond `limit` bytes is dropped.
    func run(_ arguments: [String], input: [UInt8] = [], timeout: Double, limit: Int = 1 << 20,
             environment: [String: String] = [:]) async throws(ToolError) -> Output {
        let executable = try path()
        let name = self.name
        let result: Result<Output, ToolError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Self.runBlocking(executable, name: name, arguments, input: input, timeout: timeout,
                                                                limit: limit, environment: environment))
            }
        }
        return try result.get()
    }

    private static func runBlocking(_ executable: String, name: String, _ arguments: [String], input: [UInt8], timeout: Double,
                                    limit: Int, environment: [String: String]) -> Result<Output, ToolError> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do {
            try process.run()
        } catch {
            return .failure(ToolError("\(name) did not start: \(error.localizedDescription)"))
        }
        let killer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        // The input goes in on a thread of its own, so that a program that writes before it has read all of it
        // cannot block both ends.
        let writer = Thread {
            let handle = stdin.fileHandleForWriting
            try? handle.write(contentsOf: Data(input))
            try? handle.close()
        }
        writer.start()
        // stderr on a thread of its own too: a program that fills it before it closes stdout must not stall.
        let errors = CollectedBytes()
        let errorReader = Thread { errors.finish(BoundedReader(stderr.fileHandleForReading, limit: 64 << 10).readAll()) }
        errorReader.start()
        let output = BoundedReader(stdout.fileHandleForReading, limit: limit).readAll()
        let errorText = String(decoding: errors.wait(), as: UTF8.self)
        process.waitUntilExit()
        killer.cancel()
        if process.terminationReason == .uncaughtSignal, process.terminationStatus == SIGKILL {
            return .failure(ToolError("\(name) took longer than \(Int(timeout)) s and was stopped"))
        }
        let lastError = errorText.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        return .success(Output(status: process.terminationStatus, stdout: output, lastError: lastError))
    }
}

/// Bytes one thread collects and another waits for.
private final class CollectedBytes: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var bytes: [UInt8] = []

    func finish(_ bytes: [UInt8]) {
        self.bytes = bytes
        done.signal()
    }

    func wait() -> [UInt8] {
        done.wait()
        return bytes
    }
}

/// Reads a pipe to its end, keeping at most `limit` bytes (the rest is read and dropped, so the writer never blocks).
private struct BoundedReader {
    let handle: FileHandle
    let limit: Int

    init(_ handle: FileHandle, limit: Int) {
        self.handle = handle
        self.limit = limit
    }

    func readAll() -> [UInt8] {
        var kept: [UInt8] = []
        while let chunk = try? handle.read(upToCount: 65_536), !chunk.isEmpty {
            if kept.count < limit { kept += chunk.prefix(limit - kept.count) }
        }
        return kept
    }
}

/// Why a host tool gave no answer, in one line.
public struct ToolError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
