import Foundation
import Testing

/// A VM's desktop through the hypervisor and the portal's verdicts, through a real controller, CLI and agent
/// (``FleetLab``). libvirt's test driver is real libvirt: it takes keys (virDomainSendKey) and hands over a
/// screenshot of its own (a NeXT desktop showing "World Wide Web" and "General Overview"), which tesseract reads
/// on this host. Its domains boot nothing, so the portal is a scripted frontend on a private session bus
/// (`Helpers/scripted_portal.py`), and the guest's side is the real `portal-session.py`, run by the real agent.
@Suite(.serialized, .timeLimit(.minutes(4))) struct DesktopTests {
    static let helpers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Helpers")

    /// A one-VM fleet on the big test host whose workflow is `steps`: its `up` result.
    func up(_ fleet: FleetLab, _ name: String, steps: String) async throws -> Lab.Result {
        await fleet.lab.run(["up", try fleet.spec(name, FleetTests.header(name, backend: "big") + "count: 1\nworkflow:\n" + steps)])
    }

    @Test func theHypervisorsScreenIsReadAndAMissingTextIsQuoted() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let brought = try await up(fleet, "console", steps: """
              - name: wait for the page
                desktop: {wait_text: "General Overview", within_seconds: 60}
              - name: read it
                verify:
                  - screen_text: {contains: "World Wide Web", within_seconds: 30}
            """)
        #expect(brought.status == 0, "\(brought.stdout)\(brought.stderr)")
        let done = await fleet.events(fleet: "console").compactMap { $0["message"] as? String }
        #expect(done.contains { $0.contains("wait for the page: read 'General Overview' after") }, "\(done)")
        #expect(done.contains { $0.contains("screen text 'World Wide Web' ok (read after 1 reading(s)") }, "\(done)")

        // The CLI: found, then not found within 2 s, with what OCR read instead.
        let found = await fleet.lab.run(["desktop", "wait-text", "console-1", "General Overview"])
        #expect(found.status == 0 && found.stdout.hasPrefix("read 'General Overview' after "), "\(found.stdout)\(found.stderr)")
        let picture = try #require(found.stdout.components(separatedBy: "; screen: ").last?.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(FileManager.default.contents(atPath: picture)?.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "\(picture)")
        let missing = await fleet.lab.run(["desktop", "wait-text", "console-1", "ionlab-nowhere", "--timeout", "2"])
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("ionlab: 'ionlab-nowhere' is not on the screen after "), "\(missing.stderr)")
        #expect(missing.stderr.contains("OCR read: 'WorldWideWeb "), "\(missing.stderr)")
        #expect(missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")

        // The same as a step: it fails the VM, and its verdict quotes the screen.
        let absent = try await up(fleet, "absent", steps: "  - verify:\n      - screen_text: {contains: \"ionlab-nowhere\", within_seconds: 2}\n")
        #expect(absent.status == 1)
        #expect(absent.stdout.contains("screen text 'ionlab-nowhere' FAILED (not on the screen after "), "\(absent.stdout)")
        #expect(absent.stdout.contains("OCR read: 'WorldWideWeb "), "\(absent.stdout)")

        // The remote desktop's screen instead: frames from the guest's VNC server, through the agent's channel.
        let port = try await OperationTests.scriptedVNCServer(fleet)
        let remote = try await up(fleet, "remote", steps: "  - verify:\n      - screen_text: {contains: \"terminal ready\", source: remote_desktop, port: \(port)}\n")
        #expect(remote.status == 0, "\(remote.stdout)\(remote.stderr)")
        let closed = try Lab.freePort()
        let refused = try await up(fleet, "refused", steps: "  - verify:\n      - screen_text: {contains: x, source: remote_desktop, port: \(closed)}\n")
        #expect(refused.status == 1 && refused.stdout.contains("cannot connect to 127.0.0.1:\(closed): connection refused"), "\(refused.stdout)")
    }

    @Test func keysAndTextGoThroughTheHypervisorAndAVMWithoutAScreenSaysSo() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let brought = try await up(fleet, "keys", steps: "  - desktop: {key: \"ctrl+alt+t\"}\n  - desktop: {type: \"echo hello\\n\"}\n")
        #expect(brought.status == 0, "\(brought.stdout)\(brought.stderr)")
        // The test driver's screen never changes: the key's step says so and goes on.
        let messages = await fleet.events(fleet: "keys").compactMap { $0["message"] as? String }
        #expect(messages.contains { $0.contains("press ctrl+alt+t: pressed ctrl+alt+t; the screen did not change within 5.0 s") }, "\(messages)")
        #expect(messages.contains { $0.contains("type 11 character(s): typed 11 character(s)") }, "\(messages)")

        let typed = await fleet.lab.run(["desktop", "type", "keys-1", "ls -l /\\n"])
        #expect(typed.status == 0 && typed.stdout == "typed 8 character(s)\n", "\(typed.stdout)\(typed.stderr)")
        let foreign = await fleet.lab.run(["desktop", "type", "keys-1", "café"])
        #expect(foreign.status != 0 && foreign.stderr.contains("TEXT: expected 1 to 4096 characters of printable ASCII"), "\(foreign.stderr)")
        let unknown = await fleet.lab.run(["desktop", "key", "keys-1", "hyper+x"])
        #expect(unknown.status != 0 && unknown.stderr.contains("KEYS: 'hyper' is not a key ionlab knows"), "\(unknown.stderr)")

        // Stopped, the VM has no screen: the command says so in one line, and so does a step.
        let stopped = await fleet.lab.run(["vm", "stop", "keys-1"])
        #expect(stopped.status == 0, "\(stopped.stdout)\(stopped.stderr)")
        let key = await fleet.lab.run(["desktop", "key", "keys-1", "super+Return"])
        #expect(key.status == 1)
        #expect(key.stderr == "ionlab: VM keys-1 is not running (it is shut-off): it has no screen\n", "\(key.stderr)")
        let nobody = await fleet.lab.run(["desktop", "key", "nobody", "super+Return"])
        #expect(nobody.status == 1 && nobody.stderr == "ionlab: no VM named 'nobody'\n", "\(nobody.stderr)")
    }

    /// Starts a scripted portal frontend with `arguments` on a bus of its own; returns the bus's address.
    static func scriptedPortal(_ lab: Lab, _ arguments: [String], in directory: String) async throws -> String {
        let file = "\(directory)/portal-\(UUID().uuidString.prefix(8)).address"
        // Debian's Python, with python3-dbus and python3-gi (scripts/install-deps.sh).
        _ = try lab.spawnHelper("/usr/bin/python3", [helpers.appendingPathComponent("scripted_portal.py").path, "--address-file", file] + arguments,
                                log: "portal-\(arguments.joined(separator: "_")).log")
        try await eventually("the scripted portal", timeout: 30) { FileManager.default.fileExists(atPath: file) }
        return try String(contentsOfFile: file, encoding: .utf8)
    }

    /// A portal backend that is not running, or not configured: the verdict names the step that failed and why.
    @Test(arguments: [
        (["--no-portal"], "the portal session failed at portal: org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.portal.Desktop was not provided by any .service files (xdg-desktop-portal is not running on this session bus)"),
        (["--no-screencast"], "the portal session failed at ScreenCast: org.freedesktop.DBus.Error.InvalidArgs: No such interface “org.freedesktop.portal.ScreenCast” (the frontend has no backend for it: is the backend running, and named in a .portal file?)"),
        (["--start-response", "1"], "the portal session failed at Start: the portal answered 1: the request was cancelled (by the user, or by a chooser the backend runs)"),
        (["--start-response", "2"], "the portal session failed at Start: the portal answered 2: the backend ended the request"),
    ])
    func aPortalThatCannotShareTheScreenFailsAtTheStepThatFailed(arguments: [String], verdict: String) async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-portal-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let holder = try await Lab(config: "")
        defer { holder.tearDown() }
        let address = try await Self.scriptedPortal(holder, arguments, in: scratch)
        // The guest script runs on Debian's Python here too, as in a Debian guest.
        let fleet = try await FleetLab(guestEnvironment: ["IONLAB_SESSION_BUS": address, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"])
        try await fleet.start()
        let result = try await up(fleet, "portal", steps: "  - verify:\n      - portal_session: {user: root, seconds: 1}\n")
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        let message = try await #require(fleet.events(fleet: "portal").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String)
        #expect(message == "0/1 passed: portal session of root FAILED (\(verdict))", "\(message)")
    }
}
