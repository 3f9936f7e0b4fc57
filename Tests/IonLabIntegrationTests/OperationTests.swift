import Foundation
import Testing

/// The built-in step operations (package, service, verify) through a real controller and a real agent on
/// 127.0.0.1 (see ``FleetLab``): they act on this host, and remove what they installed.
@Suite(.serialized, .timeLimit(.minutes(3))) struct OperationTests {
    /// A one-VM fleet on the big test host running `steps`; returns `ionlab up`'s result.
    func up(_ fleet: FleetLab, _ name: String, steps: String) async throws -> Lab.Result {
        let spec = try fleet.spec(name, FleetTests.header(name, backend: "big") + "count: 1\nworkflow:\n" + steps)
        return await fleet.lab.run(["up", spec])
    }

    /// A `.deb` named `name` with one file under /usr/share/NAME, and `depends` if given.
    static func buildDeb(_ name: String, version: String, depends: String? = nil, in directory: String) async throws -> String {
        let root = "\(directory)/\(name)-root"
        try FileManager.default.createDirectory(atPath: "\(root)/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/usr/share/\(name)", withIntermediateDirectories: true)
        var control = "Package: \(name)\nVersion: \(version)\nArchitecture: all\nMaintainer: ionlab tests <t@localhost>\n"
        if let depends { control += "Depends: \(depends)\n" }
        control += "Description: ionlab test package; safe to remove\n"
        try control.write(toFile: "\(root)/DEBIAN/control", atomically: true, encoding: .utf8)
        try "hello from \(name)\n".write(toFile: "\(root)/usr/share/\(name)/hello.txt", atomically: true, encoding: .utf8)
        let deb = "\(directory)/\(name)_\(version)_all.deb"
        let built = await Lab.runProgram("/usr/bin/dpkg-deb", ["--root-owner-group", "--build", root, deb], directory: directory)
        try #require(built.status == 0, "dpkg-deb: \(built.stderr)")
        return deb
    }

    static func installedVersion(_ package: String) async -> String? {
        let query = await Lab.runProgram("/usr/bin/dpkg-query", ["-W", "-f", "${Status} ${Version}", package], directory: "/")
        guard query.status == 0, query.stdout.hasPrefix("install ok installed ") else { return nil }
        return String(query.stdout.dropFirst("install ok installed ".count))
    }

    @Test func aDebSentOverTheChannelIsInstalledAndItsVersionReported() async throws {
        let package = "ionlab-test-hello"
        defer { _ = Lab.runProgramBlocking("/usr/bin/dpkg", ["--purge", package], directory: "/") }
        let fleet = try await FleetLab()
        try await fleet.start()
        let deb = try await Self.buildDeb(package, version: "1.2.3", in: fleet.scratch)
        let result = try await up(fleet, "pkg", steps: "  - package: {deb: \(deb)}\n")
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        await #expect(Self.installedVersion(package) == "1.2.3")
        #expect(try String(contentsOfFile: "/usr/share/\(package)/hello.txt", encoding: .utf8) == "hello from \(package)\n")
        let events = await fleet.events(fleet: "pkg")
        #expect(events.contains { $0["kind"] as? String == "package.installing" })
        let installed = events.first { $0["kind"] as? String == "package.installed" }?["message"] as? String
        let jobs = await fleet.lab.run(["jobs", "--json"]).stdout
        #expect(installed == "installed \(package) 1.2.3", "\(jobs.suffix(1500))")
    }

    /// The remote-desktop probe as a viewer would run it, from the controller through the agent's channel, against a
    /// scripted VNC server that knows nothing of ionlab: the handshake, a first frame saved as a picture, a marker
    /// typed that OCR must read on the second, the session as an animated picture; and a blank screen, a screen that
    /// changed without showing the marker (its verdict quotes what was read) and a closed port each fail with their reason.
    @Test func theRemoteDesktopProbeConnectsTakesFramesTypesAndKeepsPictures() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let (port, blankPort, closedPort) = (try await Self.scriptedVNCServer(fleet), try await Self.scriptedVNCServer(fleet, mode: "--blank"), try Lab.freePort())
        let garbledPort = try await Self.scriptedVNCServer(fleet, mode: "--garbled")

        let result = try await up(fleet, "rd", steps: "  - verify:\n      - remote_desktop: {port: \(port)}\n")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let verdict = try await #require(fleet.events(fleet: "rd").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String)
        #expect(verdict.contains("remote desktop on port \(port) ok (480×120 'scripted': connected in"), "\(verdict)")
        #expect(verdict.contains("input on screen in"), "\(verdict)")
        #expect(verdict.wholeMatch(of: /.*; OCR read 'ionlab-[a-z0-9]{6}'\)/) != nil, "\(verdict)")
        let facts = try await #require(fleet.vms().first { $0["name"] as? String == "rd-1" }?["facts"] as? [String: String])
        #expect(facts["remote_desktop.screen"] == "480x120")
        for key in ["picture.first", "picture.after_input", "picture.remote_desktop_session"] {
            let path = try #require(facts[key], "no \(key) in \(facts)")
            let png = try #require(FileManager.default.contents(atPath: path))
            #expect(png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "\(path) is not a PNG")
        }

        let sessionPath = try #require(facts["picture.remote_desktop_session"])
        let session = try #require(FileManager.default.contents(atPath: sessionPath))
        #expect(session.range(of: Data("acTL".utf8)) != nil, "the session's picture is not animated")

        let blank = try await up(fleet, "rdblank", steps: "  - verify:\n      - remote_desktop: {port: \(blankPort)}\n")
        #expect(blank.status == 1)
        #expect(blank.stdout.contains("the first frame is blank"), "\(blank.stdout)")
        let garbled = try await up(fleet, "rdgarbled", steps: "  - verify:\n      - remote_desktop: {port: \(garbledPort)}\n")
        #expect(garbled.status == 1)
        let failed = try await #require(fleet.events(fleet: "rdgarbled").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String)
        #expect(failed.wholeMatch(of: /.*FAILED \(the marker ionlab-[a-z0-9]{6} it typed is not on the screen after the input; OCR read: '[^']*Segmentation fault[^']*'; 480×120 .*/) != nil, "\(failed)")
        let closed = try await up(fleet, "rdclosed", steps: "  - verify:\n      - remote_desktop: {port: \(closedPort)}\n")
        #expect(closed.status == 1)
        #expect(closed.stdout.contains("cannot connect to 127.0.0.1:\(closedPort): connection refused"), "\(closed.stdout)")
    }

    /// Starts `Helpers/rfb_server.py` (a VNC server that knows nothing of ionlab) on a free port, and returns the
    /// port once it accepts; `mode` `--blank` gives it a screen of one colour and a single pixel, `--garbled` one
    /// that changes with the keys without showing them.
    static func scriptedVNCServer(_ fleet: FleetLab, mode: String? = nil) async throws -> Int {
        let helper = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Helpers/rfb_server.py").path
        let port = try Lab.freePort()
        // Debian's Python: it has Pillow (python3-pil, scripts/install-deps.sh) and the fonts.
        _ = try fleet.lab.spawnHelper("/usr/bin/python3", [helper, String(port)] + (mode.map { [$0] } ?? []),
                                      log: "rfb\(mode ?? "").log")
        try await eventually("the VNC server on port \(port)", timeout: 30) { await ForwardTests.connects(port) }
        return port
    }

    /// `ionlab demo`'s summary keeps its table as narrow as what it holds: the facts, the pictures by name and how
    /// many probes passed in all its verify steps; then each verdict on a line of its own under its VM, escaped (a
    /// guest writes them). Run again, the step that passed is skipped and its verdict still shown.
    @Test func theDemoSummaryNamesThePicturesAndGivesEachVerdictALine() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let port = try await Self.scriptedVNCServer(fleet)
        let spec = try fleet.spec("show", FleetTests.header("show", backend: "big") + """
            count: 1
            workflow:
              - name: screen
                verify:
                  - remote_desktop: {port: \(port)}
              - name: checks
                verify:
                  - command: ['sh', '-c', 'printf "nope \\033]0;pwned\\007"; exit 4']
            """)
        for _ in 1...2 {
            let demo = await fleet.lab.run(["demo", "--spec", spec])
            #expect(demo.status == 1, "\(demo.stdout)\(demo.stderr)")
            try Self.expectDemoSummary(demo, port: port, stateDir: fleet.lab.stateDir)
        }
        let verified = await fleet.events(fleet: "show").filter { $0["kind"] as? String == "verify.complete" }.compactMap { $0["message"] as? String }
        #expect(verified.map { $0.prefix(10) } == ["1/1 passed", "0/1 passed", "0/1 passed"], "the second run skips the step that passed: \(verified)")
    }

    static func expectDemoSummary(_ demo: Lab.Result, port: Int, stateDir: String) throws {
        #expect(!demo.stdout.contains("\u{1B}"), "a guest's escape reached the terminal")
        let summary = try #require(demo.stdout.components(separatedBy: "3/3 what each VM reported, and its verification\n").dropFirst().first,
                                   "\(demo.stdout)")
        let lines = summary.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count >= 8, "\(demo.stdout)\(demo.stderr)")
        guard lines.count >= 8 else { return }
        #expect(lines[0].split(separator: " ") == ["VM", "REMOTE_DESKTOP.SCREEN", "PICTURES", "VERIFY"], "\(summary)")
        #expect(lines[1].hasPrefix("show-1 ") && lines[1].hasSuffix("  480x120                3, 1 animated  1/2 passed"), "\(summary)")
        #expect(lines[2].isEmpty && lines[3] == "show-1", "\(summary)")
        #expect(lines[4].hasPrefix("  ok      remote desktop on port \(port) (480×120 'scripted': connected in "), "\(summary)")
        #expect(lines[4].contains("; pictures: \(stateDir)/pictures/show-1/"), "\(summary)")
        #expect(lines[5] == "  FAILED  command sh -c printf \"nope \\033]0;pwned\\007\"; exit 4 (exit 4: nope \\u{1B}]0;pwned\\u{7})", "\(summary)")
        #expect(lines.count > 7 && lines[6] == "  pictures  first, after_input, remote_desktop_session (animated)", "\(summary)")
        #expect(lines.count > 7 && lines[7].hasPrefix("  measured  remote_desktop.connect_ms "), "\(summary)")
    }

    /// VNC Authentication against a real server that knows nothing of ionlab: TigerVNC's Xvnc with a password,
    /// on loopback. The password is read from the machine of the agent (here the host) through the channel, and
    /// never reaches a job's output. The right one gets a frame (Xvnc's bare root window: keys change nothing
    /// there, so the verdict says the input did not show); a wrong one, none, and a missing file each fail with
    /// their reason.
    @Test func theRemoteDesktopProbeAnswersAServerThatAsksForAPassword() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let port = try Lab.freePort()
        let obfuscated = "\(fleet.scratch)/xvnc-passwd", plain = "\(fleet.scratch)/vnc-password", wrong = "\(fleet.scratch)/wrong-password"
        let password = "pw-\(UInt32.random(in: 0...UInt32.max))"
        let made = await Lab.runProgram("/usr/bin/sh", ["-c", "printf '%s\\n' \"$1\" | vncpasswd -f >\"$2\"", "sh", password, obfuscated], directory: fleet.scratch)
        #expect(made.status == 0, "vncpasswd (tigervnc-tools, scripts/install-deps.sh): \(made.stderr)")
        try "\(password)\n".write(toFile: plain, atomically: true, encoding: .utf8)
        try "not-\(password)\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        let display = port % 10_000 + 100
        let xvnc = try fleet.lab.spawnHelper("/usr/bin/Xvnc", [":\(display)", "-rfbport", String(port), "-localhost", "-nolisten", "tcp", "-retro",
                                                      "-SecurityTypes", "VncAuth", "-PasswordFile", obfuscated, "-geometry", "64x48", "-depth", "24"],
                                      log: "xvnc.log")
        defer {  // killed (it inherits the test's blocked signals, SIGTERM among them), it leaves these behind
            kill(xvnc.processIdentifier, SIGKILL)
            xvnc.waitUntilExit()
            for leftover in ["/tmp/.X\(display)-lock", "/tmp/.X11-unix/X\(display)"] { try? FileManager.default.removeItem(atPath: leftover) }
        }
        try await eventually("Xvnc (tigervnc-standalone-server)", timeout: 30) { await ForwardTests.connects(port) }

        func verdict(_ fleetName: String, _ fields: String) async throws -> String {
            _ = try await up(fleet, fleetName, steps: "  - verify:\n      - remote_desktop: {port: \(port)\(fields)}\n")
            return try await #require(fleet.events(fleet: fleetName).first { $0["kind"] as? String == "verify.complete" }?["message"] as? String)
        }
        let right = try await verdict("vncpw", ", password_file: \(plain)")
        #expect(right.contains("the input did not change the screen: 64×48 "), "\(right)")
        #expect(right.contains("connected in") && right.contains("first frame in"), "\(right)")
        let all = await fleet.lab.run(["events", "--json"]).stdout + fleet.lab.run(["jobs", "--json"]).stdout
        #expect(!all.contains(password), "the password reached the events or the jobs")

        await #expect(try verdict("vncwrong", ", password_file: \(wrong)").contains("the server refused the connection: Authentication failure"))
        await #expect(try verdict("vncnone", "").contains("the server asks for a password (VNC Authentication) and none was given"))
        let missing = try await verdict("vncmissing", ", password_file: \(fleet.scratch)/nothing")
        #expect(missing.contains("\(fleet.scratch)/nothing"), "\(missing)")
    }

    /// A `.deb` the VM downloads (here from an HTTP server on 127.0.0.1), checked against its sha256.
    @Test func aDebFromAURLIsDownloadedCheckedAndInstalled() async throws {
        let package = "ionlab-test-fetched"
        defer { _ = Lab.runProgramBlocking("/usr/bin/dpkg", ["--purge", package], directory: "/") }
        let fleet = try await FleetLab()
        try await fleet.start()
        let site = "\(fleet.scratch)/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        let deb = try await Self.buildDeb(package, version: "2.0", in: site)
        let sha256 = await Lab.runProgram("/usr/bin/sha256sum", [deb], directory: site).stdout.prefix(64)
        let port = try Lab.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", site, String(port)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let url = "http://127.0.0.1:\(port)/\(URL(fileURLWithPath: deb).lastPathComponent)"
        try await eventually("the HTTP server", timeout: 30) {
            await Lab.runProgram("/usr/bin/curl", ["-fsS", "-o", "/dev/null", url], directory: site).status == 0
        }
        let wrong = String(repeating: "0", count: 64)
        let refused = try await up(fleet, "badsum", steps: "  - package: {url: \"\(url)\", sha256: \"\(wrong)\"}\n")
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("sha256 of \(url) is \(sha256), expected \(wrong)"), "\(refused.stdout)")
        await #expect(Self.installedVersion(package) == nil)

        let fetched = try await up(fleet, "fetch", steps: "  - package: {url: \"\(url)\", sha256: \"\(sha256)\"}\n")
        #expect(fetched.status == 0, "\(fetched.stdout)")
        await #expect(Self.installedVersion(package) == "2.0")
        await #expect(fleet.events(fleet: "fetch").contains { $0["message"] as? String == "installed \(package) 2.0" })
    }

    @Test func aPackageThatCannotBeInstalledShowsAptsOwnMessage() async throws {
        let package = "ionlab-test-broken"
        defer { _ = Lab.runProgramBlocking("/usr/bin/dpkg", ["--purge", package], directory: "/") }
        let fleet = try await FleetLab()
        try await fleet.start()
        let deb = try await Self.buildDeb(package, version: "0.1", depends: "ionlab-no-such-package", in: fleet.scratch)
        let result = try await up(fleet, "broken", steps: "  - package: {deb: \(deb)}\n")
        #expect(result.status == 1)
        #expect(result.stdout.contains("broken-1: failed at install \(package)_0.1_all.deb:"), "\(result.stdout)")
        #expect(result.stdout.contains("ionlab-no-such-package"), "apt's message is missing: \(result.stdout)")
        await #expect(Self.installedVersion(package) == nil)
    }

    @Test func verifyProbesPassAndFailWithAVerdictEach() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let port = try Lab.freePort(), closed = try Lab.freePort()
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        listener.arguments = ["python3", "-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', \(port))); s.listen(); time.sleep(120)"]
        try listener.run()
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["120"]
        try sleeper.run()
        defer {
            for process in [listener, sleeper] {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        try await eventually("the listener", timeout: 30) { await Lab.runProgram("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], directory: "/").status == 0 }

        let passing = try await up(fleet, "good", steps: """
              - verify:
                  - port: \(port)
                  - process: sleep
                  - command: ["test", "-d", "/tmp"]
            """)
        #expect(passing.status == 0, "\(passing.stdout)\n\(passing.stderr)")
        let good = await fleet.events(fleet: "good").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String ?? ""
        #expect(good.hasPrefix("3/3 passed: port \(port) ok (accepts on 127.0.0.1); process sleep ok (pid "), "\(good)")
        #expect(good.hasSuffix("command test -d /tmp ok (exit 0)"), "\(good)")

        let failing = try await up(fleet, "bad", steps: """
              - verify:
                  - port: \(closed)
                  - process: ionlab-absent
                  - command: ["sh", "-c", "echo nope; exit 4"]
                  - port: \(port)
                  - rustdesk_id: true
                  - dbus_name: org.ionlab.NoSuchName
                  - dbus_interface: {path: /org/ionlab/none, interface: org.ionlab.NoSuchInterface}
                  - unit_active: ionlab-no-such-unit
            """)
        #expect(failing.status == 1)
        let bad = await fleet.events(fleet: "bad").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String ?? ""
        #expect(bad.hasPrefix("1/8 passed: port \(closed) FAILED (refused on 127.0.0.1); process ionlab-absent FAILED (not running); "
                + "command sh -c echo nope; exit 4 FAILED (exit 4: nope); port \(port) ok (accepts on 127.0.0.1); RustDesk ID FAILED (rustdesk is not installed); "
                + "D-Bus org.ionlab.NoSuchName FAILED (on no bus); D-Bus org.ionlab.NoSuchInterface FAILED (no session bus exports it at that path); unit ionlab-no-such-unit FAILED ("), "\(bad)")
        #expect(failing.stdout.contains("bad-1: failed at verify"), "\(failing.stdout)")
    }

    /// A guest's verdict as long as its report allows (a command's last line of 40,000 characters) is cut, so the
    /// `verify.complete` event keeps its counts and every verdict rather than losing its detail whole.
    @Test func aLongVerdictIsCutAndTheEventKeepsItsVerdicts() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let result = try await up(fleet, "long", steps: """
              - verify:
                  - command: ["sh", "-c", "printf '%040000d' 0 | tr 0 x; exit 3"]
                  - port: 1
            """)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        let event = try await #require(fleet.events(fleet: "long").first { $0["kind"] as? String == "verify.complete" })
        let detail = try #require(FleetLab.detail(event, "verification"), "the event lost its detail: \(event)")
        #expect(detail["passed"] as? Int == 0 && detail["probes"] as? Int == 2 && detail["step"] as? String == "verify command sh -c printf '%040000d' 0 | tr 0 x; exit 3, port 1")
        let verdicts = try #require(detail["verdicts"] as? [[String: Any]])
        #expect(verdicts.map { $0["label"] as? String } == ["command sh -c printf '%040000d' 0 | tr 0 x; exit 3", "port 1"])
        let long = try #require(verdicts.first?["detail"] as? String)
        #expect(long.hasPrefix("exit 3: xxxx") && long.hasSuffix("x…") && long.count == 6000, "\(long.count) characters")
    }

    /// The D-Bus probes against a private session bus (its daemon owns `org.freedesktop.DBus` and exports that
    /// interface at /org/freedesktop/DBus), and the RustDesk ID probe against the stand-in package installed on
    /// this host with its service process running. Both are removed afterwards.
    @Test func dbusAndRustDeskProbesPassWhenTheirTargetsAreThere() async throws {
        try await #require(Self.installedVersion("rustdesk") == nil, "this host has a rustdesk package; the test would replace it")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-bus-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let address = "unix:path=\(scratch)/bus"
        let bus = Process(), rustdesk = Process()
        bus.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        bus.arguments = ["--session", "--nofork", "--address=\(address)"]
        try bus.run()
        defer {
            for process in [bus, rustdesk] where process.processIdentifier != 0 {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            _ = Lab.runProgramBlocking("/usr/bin/dpkg", ["--purge", "rustdesk"], directory: "/")
            try? FileManager.default.removeItem(atPath: "/run/rustdesk-standin")
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let built = await Lab.runProgram(VMCommandTests.repo.appendingPathComponent("scripts/build-standin-rustdesk.sh").path, [scratch], directory: scratch)
        try #require(built.status == 0, "\(built.stderr)")
        let installed = await Lab.runProgram("/usr/bin/dpkg", ["-i", built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)], directory: scratch)
        try #require(installed.status == 0, "\(installed.stderr)")
        rustdesk.executableURL = URL(fileURLWithPath: "/usr/bin/rustdesk")
        rustdesk.arguments = ["--service"]
        try rustdesk.run()
        try await eventually("the stand-in to register", timeout: 30) { FileManager.default.fileExists(atPath: "/run/rustdesk-standin/registered") }

        let fleet = try await FleetLab(guestEnvironment: ["DBUS_SESSION_BUS_ADDRESS": address])
        try await fleet.start()
        let result = try await up(fleet, "probes", steps: """
              - verify:
                  - dbus_name: org.freedesktop.DBus
                  - dbus_interface: {path: /org/freedesktop/DBus, interface: org.freedesktop.DBus}
                  - rustdesk_id: true
            """)
        #expect(result.status == 0, "\(result.stdout)")
        let id = await Lab.runProgram("/usr/bin/rustdesk", ["--get-id"], directory: scratch).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let verdict = await fleet.events(fleet: "probes").first { $0["kind"] as? String == "verify.complete" }?["message"] as? String ?? ""
        #expect(verdict == "3/3 passed: D-Bus org.freedesktop.DBus ok (on \(address)); "
                + "D-Bus org.freedesktop.DBus ok (org.freedesktop.DBus on \(address)); RustDesk ID ok (\(id))", "\(verdict)")
    }

    /// Issue 9, item 12: the RustDesk password once travelled in argv, so it landed in the jobs table, in
    /// `ionlab jobs`, and (with the spec) in the store. It now reaches the guest on stdin: the stand-in on this
    /// host receives it, and no job, event or page of the store holds it.
    @Test func theRustDeskPasswordIsInNoArgvJobEventOrStore() async throws {
        try await #require(Self.installedVersion("rustdesk") == nil, "this host has a rustdesk package; the test would replace it")
        let config = "/root/.config/rustdesk"
        try #require(!FileManager.default.fileExists(atPath: config), "this host has a RustDesk config; the test would overwrite it")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-rd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer {
            _ = Lab.runProgramBlocking("/usr/bin/dpkg", ["--purge", "rustdesk"], directory: "/")
            try? FileManager.default.removeItem(atPath: "/run/rustdesk-standin")
            try? FileManager.default.removeItem(atPath: config)
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let built = await Lab.runProgram(VMCommandTests.repo.appendingPathComponent("scripts/build-standin-rustdesk.sh").path, [scratch], directory: scratch)
        try #require(built.status == 0, "\(built.stderr)")
        let deb = built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let password = "Sup3r-secret-\(UUID().uuidString.prefix(8))"
        let fleet = try await FleetLab()
        try await fleet.start()
        // Without systemd (this machine) the step fails later, at starting the service: the password is set by then.
        _ = try await up(fleet, "rd", steps: "  - rustdesk: {deb: \(deb), password: \"\(password)\"}\n")
        let recorded = (try? String(contentsOfFile: "\(config)/RustDesk.toml", encoding: .utf8)) ?? ""
        let digest = await Lab.runProgram("/bin/sh", ["-c", "printf %s \"$1\" | sha256sum | cut -d' ' -f1", "sh", password], directory: "/").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(recorded.contains(digest), "the stand-in did not get the password: \(recorded)")
        for listing in [["jobs", "--json", "--limit", "1000"], ["events", "--json"], ["status", "--json"]] {
            let output = await fleet.lab.run(listing)
            #expect(output.status == 0)
            #expect(!output.stdout.contains(password), "\(listing) shows the password")
        }
        for file in ["ionlab.sqlite", "ionlab.sqlite-wal"] {
            let bytes = FileManager.default.contents(atPath: "\(fleet.lab.stateDir)/\(file)") ?? Data()
            #expect(bytes.range(of: Data(password.utf8)) == nil, "\(file) holds the password")
        }
        #expect(!fleet.lab.log("controller.log").contains(password))
    }

    /// With systemd running, a unit is installed, started and its status read; without it, the step fails
    /// with a clear reason. (This development machine has no systemd; the VM test covers the first case too.)
    @Test func aServiceIsStartedAndItsStatusRead() async throws {
        let fleet = try await FleetLab()
        try await fleet.start()
        let unit = "\(fleet.scratch)/ionlab-test-sleeper.service"
        try "[Unit]\nDescription=ionlab test unit\n[Service]\nExecStart=/bin/sleep 300\n".write(toFile: unit, atomically: true, encoding: .utf8)
        defer {
            _ = Lab.runProgramBlocking("/bin/sh", ["-c", "systemctl stop ionlab-test-sleeper; rm -f /etc/systemd/system/ionlab-test-sleeper.service; systemctl daemon-reload"],
                               directory: "/")
        }
        let result = try await up(fleet, "svc", steps: "  - service: {name: ionlab-test-sleeper, state: started, unit: \(unit)}\n")
        if FileManager.default.fileExists(atPath: "/run/systemd/system") {
            #expect(result.status == 0, "\(result.stdout)")
            let events = await fleet.events(fleet: "svc")
            let started = events.first { $0["kind"] as? String == "service.started" }
            #expect((started?["message"] as? String ?? "").hasPrefix("ionlab-test-sleeper active/running, main PID "))
        } else {
            #expect(result.status == 1)
            #expect(result.stdout.contains("systemd is not running on this machine (PID 1 is "), "\(result.stdout)")
        }
    }
}
