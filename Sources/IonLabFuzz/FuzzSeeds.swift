import Crypto
import Foundation
import IonLabAgentProtocol
import IonLabWire
import NIOCore

/// The seed corpus: well-formed inputs (and the attacks of issue 9) for each target, from which libFuzzer
/// mutates. `ionlab-fuzz seeds DIR` writes them; they are kept in `Tests/FuzzCorpus`.
public enum FuzzSeeds {
    public static func all(for target: FuzzTarget) throws -> [String: [UInt8]] {
        switch target {
        case .frames: return try frames()
        case .messages: return try messages()
        case .tree: return try trees()
        }
    }

    static func frame(_ kind: FrameKind, stream: UInt32, _ payload: ByteBuffer) throws -> [UInt8] {
        var out = ByteBuffer()
        try FrameEncoder().encode(data: Frame(kind: kind, stream: stream, payload: payload), out: &out)
        return Array(out.readableBytesView)
    }

    static func message<Message: WireMessage>(_ message: Message, stream: UInt32 = 0) throws -> [UInt8] {
        try frame(.message, stream: stream, MessageCoding.encode(message))
    }

    static func data(_ bytes: [UInt8], stream: UInt32, channel: DataChannel = .content) throws -> [UInt8] {
        try frame(.data, stream: stream, ByteBuffer(bytes: [channel.rawValue] + bytes))
    }

    static func grant(_ amount: UInt32, stream: UInt32) throws -> [UInt8] {
        var payload = ByteBuffer()
        payload.writeInteger(amount)
        return try frame(.window, stream: stream, payload)
    }

    static let health = Health(bootID: "b-1", hostname: "vm1", uptimeSeconds: 12, load: [0.1, 0.2, 0.3], memoryTotalBytes: 100,
                               memoryAvailableBytes: 50, diskTotalBytes: 100, diskFreeBytes: 10, agentVersion: "0.1.0", cloudInit: "done",
                               instanceID: "i-1")

    static let opening = AgentRequest.get(GetRequest(source: "/etc/hostname", recursive: false))

    static func frames() throws -> [String: [UInt8]] {
        [
            "hello-heartbeat": try message(AgentControl.hello(Hello(role: .agent, software: "ionlab-agent 0.1.0", bootID: "b-1", runningJobs: ["j-1"])))
                + message(AgentControl.heartbeat(health)),
            "exec-stream": try message(AgentRequest.exec(ExecSpec(jobID: "j-1", argv: ["true"])), stream: 2) + data(Array("input".utf8), stream: 2)
                + message(AgentStreamMessage.stdinEnd, stream: 2) + grant(4096, stream: 2) + frame(.reset, stream: 2, ByteBuffer()),
            "out-of-order-opens": try message(opening, stream: 6) + message(opening, stream: 2) + message(opening, stream: 4),
            "id-jump": try message(opening, stream: 2 + 2 * 4096) + message(opening, stream: 2 + 4 * 4096),
            "grant-overflow": try message(opening, stream: 2) + grant(.max, stream: 2) + grant(.max, stream: 2),
            "oversize-header": [0x7f, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0],
        ]
    }

    static func messages() throws -> [String: [UInt8]] {
        var seeds: [String: [UInt8]] = [:]
        let samples: [(String, any WireMessage)] = [
            ("hello", AgentControl.hello(Hello(role: .agent, software: "ionlab-agent 0.1.0", bootID: "b-1", runningJobs: ["j-1"]))),
            ("enroll", AgentControl.enroll(EnrollRequest(name: "vm1", token: "ionlab-abc", csrPEM: "-----BEGIN CERTIFICATE REQUEST-----\n"))),
            ("heartbeat", AgentControl.heartbeat(health)),
            ("job-reports", AgentControl.jobReports([ExecResult(jobID: "j-1", outcome: .completed, exitCode: 0, durationSeconds: 1, outputTail: "ok\n")])),
            ("entry", AgentStreamMessage.entry(TreeEntry(path: "a/b", kind: .symlink, mode: 0o777, linkTarget: "../decoy"))),
            ("exec", AgentRequest.exec(ExecSpec(jobID: "j-1", argv: ["sh", "-c", "echo"], env: ["A": "1"], cwd: "/tmp", stdin: true, timeoutSeconds: 5))),
            ("failure", AgentStreamMessage.failure(Failure("no such file"))),
            ("renewal-required", ControllerControl.renewalRequired("expired")),
        ]
        for (name, message) in samples { seeds[name] = Array(try MessageCoding.encode(message).readableBytesView) }
        seeds["huge-uptime"] = Array(#"{"heartbeat":{"_0":{"bootID":"b","hostname":"h","uptimeSeconds":1e300,"load":[0],"memoryTotalBytes":1,"memoryAvailableBytes":1,"diskTotalBytes":1,"diskFreeBytes":1,"agentVersion":"v"}}}"#.utf8)
        seeds["nested"] = Array(String(repeating: "[", count: 2000).utf8)
        return seeds
    }

    static func file(_ path: String, _ contents: [UInt8], mode: UInt32 = 0o644, stream: UInt32 = 2) throws -> [UInt8] {
        let digest = SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
        return try message(AgentStreamMessage.entry(TreeEntry(path: path, kind: .file, mode: mode, size: UInt64(contents.count))), stream: stream)
            + data(contents, stream: stream) + message(AgentStreamMessage.fileEnd(sha256: digest), stream: stream)
    }

    static func entry(_ path: String, _ kind: TreeEntry.Kind, mode: UInt32 = 0o755, link: String? = nil) throws -> [UInt8] {
        try message(AgentStreamMessage.entry(TreeEntry(path: path, kind: kind, mode: mode, linkTarget: link)), stream: 2)
    }

    /// The first byte says whether the root is announced as a directory (1) or not (0).
    static func trees() throws -> [String: [UInt8]] {
        let end = try message(AgentStreamMessage.treeEnd(TransferSummary()), stream: 2)
        return [
            "tree": [1] + (try entry("", .directory) + entry("bin", .directory, mode: 0o750) + file("bin/tool", Array("#!/bin/sh\n".utf8), mode: 0o755)
                + entry("bin/link", .symlink, link: "tool") + entry("ro", .directory, mode: 0o555) + file("ro/note", Array("hi".utf8)) + end),
            "file-root": [0] + (try file("", Array("just a file".utf8)) + end),
            "symlink-root-with-children": [0] + (try entry("", .symlink, link: "decoy") + file("owned", Array("x".utf8)) + end),
            "entries-below-a-link": [1] + (try entry("", .directory) + entry("escape", .symlink, link: "../decoy") + file("escape/owned", [1]) + end),
            "directory-over-a-link": [1] + (try entry("", .directory) + entry("etc", .symlink, link: "../decoy") + entry("etc", .directory, mode: 0o777) + end),
            "setuid": [1] + (try entry("", .directory) + entry("t", .directory, mode: 0o1777) + file("su", [1, 2], mode: 0o6755) + end),
            "too-many-bytes": [1] + (try entry("", .directory) + message(AgentStreamMessage.entry(TreeEntry(path: "f", kind: .file, mode: 0o644, size: 1)), stream: 2)
                + data([1, 2, 3], stream: 2)),
            "dot-dot": [1] + (try entry("", .directory) + file("../up", [1]) + end),
            "combining-slash": [1] + (try entry("", .directory) + entry("...", .directory) + entry("../\u{301}decoy", .symlink, link: "../decoy")
                + file("../\u{301}decoy/\u{301}x", [1]) + end),
        ]
    }
}
