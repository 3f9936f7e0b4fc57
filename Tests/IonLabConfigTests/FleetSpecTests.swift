import Foundation
import IonLabConfig
import IonLabYAML
import IonLabSpec
import Testing

@Suite struct FleetSpecTests {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theExampleFleetLoadsWithItsRecipeExpanded() throws {
        let fleets = repo.appendingPathComponent("controller-config/fleets").path
        let spec = try FleetSpec.load(path: "\(fleets)/smoke.yaml", context: FleetContext(images: ["bookworm-test"], backends: ["local"]))
        #expect(spec.name == "smoke")
        #expect(spec.backend == .auto)
        #expect(spec.vms.map(\.name) == ["smoke-1", "smoke-2"])
        #expect(spec.resources == FleetSpec.Resources(cpus: 1, memoryMib: 512, diskGib: 4))
        #expect(spec.workflow.map(\.name) == ["os release", "system report: kernel", "system report: root filesystem",
                                               "system report: agent unit", "deploy motd", "agent is active"])
        #expect(spec.workflow[0].operation == .exec(["cat", "/etc/os-release"]))
        #expect(spec.workflow[0].timeoutSeconds == 30)
        #expect(spec.workflow[3].operation == .service(ServiceSpec(name: "ionlab-agent", state: "started")))
        #expect(spec.workflow[4].operation == .copy(from: "\(fleets)/files/motd", to: "/etc/motd"))
        #expect(spec.workflow[4].onFailure == .stop)
        #expect(spec.workflow[5].onFailure == .retry(3))
    }

    /// The ionChannel spec is the desktop demonstration's, changed only where the README says and for its reasons:
    /// the image, the RustDesk release, RemoteDesktop where the wlr backend has ScreenCast, and a VNC server
    /// (krfb) that goes through the portal and asks for a password.
    @Test func theIonChannelSpecRunsTheDesktopDemosProbesWithRemoteDesktopForScreenCast() throws {
        let fleets = repo.appendingPathComponent("controller-config/fleets").path
        let desktop = try FleetSpec.load(path: "\(fleets)/desktop.yaml")
        let ionChannel = try FleetSpec.load(path: "\(fleets)/ionchannel.yaml")
        #expect(desktop.image == "bookworm-desktop" && ionChannel.image == "pop-cosmic")
        func step(_ spec: FleetSpec, _ name: String) throws -> WorkflowStep.Operation {
            try #require(spec.workflow.first { $0.name == name }?.operation, "\(spec.name) has no step '\(name)'")
        }
        #expect(try step(ionChannel, "desktop session") == step(desktop, "desktop session"))
        guard case .verify(let screenCast) = try step(desktop, "portal"), case .verify(let remoteDesktop) = try step(ionChannel, "portal") else {
            Issue.record("the portal steps are not checks")
            return
        }
        // The same checks, RemoteDesktop for ScreenCast, and COSMIC's terminal key for the portal session's.
        #expect(remoteDesktop == screenCast.map { probe in
            switch probe {
            case .dbusInterface(let path, let interface):
                return .dbusInterface(path: path, interface: interface.replacingOccurrences(of: "ScreenCast", with: "RemoteDesktop"))
            case .portalSession(var session):
                session.terminalKeys = session.terminalKeys.map { $0 == "super+Return" ? "super+t" : $0 }
                return .portalSession(session)
            default:
                return probe
            }
        })
        #expect(screenCast.contains(.portalSession(PortalSessionProbe(user: "desktop", terminalKeys: "super+Return"))))
        #expect(try step(desktop, "remote desktop") == .verify([.remoteDesktop(port: 5900, terminalKeys: "super+Return", passwordFile: nil)]))
        #expect(try step(ionChannel, "remote desktop")
                == .verify([.remoteDesktop(port: 5900, terminalKeys: "super+t", passwordFile: "/root/.config/ionlab/vnc-password")]))
        guard case .rustdesk(let release) = try step(ionChannel, "rustdesk") else {
            Issue.record("no rustdesk step")
            return
        }
        #expect(release.version == "1.3.7" && release.deb == nil)
        func recipes(_ spec: FleetSpec) -> [String] {
            spec.workflow.compactMap { step -> String? in
                if case .recipe(let file) = step.operation { return file }
                return nil
            }
        }
        #expect(recipes(ionChannel) == ["../recipes/ionchannel-portal.yaml", "../recipes/krfb.yaml"])
        #expect(recipes(desktop) == ["../recipes/fixture-desktop-portal.yaml"])

        // The krfb recipe loads with its files, and writes the password where the probe reads it.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-krfb-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let recipes = repo.appendingPathComponent("controller-config/recipes").path
        try "name: k\nimage: pop-cosmic\ncount: 1\nworkflow:\n  - recipe: \(recipes)/krfb.yaml\n".write(toFile: "\(scratch)/k.yaml", atomically: true, encoding: .utf8)
        let krfb = try FleetSpec.load(path: "\(scratch)/k.yaml", context: FleetContext(images: ["pop-cosmic"], backends: []))
        #expect(krfb.workflow.map(\.name) == ["krfb: krfb package", "krfb: krfb setup script", "krfb: krfb configuration", "krfb: krfb service"])
        guard case .exec(let argv) = krfb.workflow[2].operation else {
            Issue.record("the krfb configuration is not a command")
            return
        }
        #expect(argv.last == "/root/.config/ionlab/vnc-password")
    }

    /// The desktop demo's portal deploy has the ionChannel recipe's shape: source, build, install, the desktop
    /// user's service, the frontend restarted, the name checked on that user's bus.
    @Test func theFixturePortalRecipeHasTheIonChannelRecipesShape() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-portal-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let recipes = repo.appendingPathComponent("controller-config/recipes").path
        try "name: p\nimage: bookworm-desktop\ncount: 1\nworkflow:\n  - recipe: \(recipes)/fixture-desktop-portal.yaml\n"
            .write(toFile: "\(scratch)/p.yaml", atomically: true, encoding: .utf8)
        let spec = try FleetSpec.load(path: "\(scratch)/p.yaml", context: FleetContext(images: ["bookworm-desktop"], backends: []))
        #expect(spec.workflow.map(\.name) == ["clean", "source", "build", "install", "portal service", "portal frontend", "check"].map { "desktop portal: \($0)" })
        #expect(spec.workflow[4].operation == .service(ServiceSpec(name: "ionlab-fixture-portal", state: "enabled",
                                                                   unit: repo.appendingPathComponent("controller-config/fixtures/desktop-portal/ionlab-fixture-portal.service").path,
                                                                   user: "desktop")))
        guard case .verify(let probes) = spec.workflow[6].operation else {
            Issue.record("the check is not a verify step")
            return
        }
        #expect(probes.contains(.dbusName("org.freedesktop.impl.portal.desktop.ionlabfixture", user: "desktop")))
    }

    /// The desktop's probes and steps read as written, with their defaults, and write back as they read.
    @Test func theDesktopsProbesAndStepsReadWithTheirDefaults() throws {
        let spec = try StrictYAML.decode(FleetSpec.self, from: """
            name: d
            image: i
            count: 1
            workflow:
              - verify:
                  - portal_session: {user: desktop}
                  - portal_session: {user: desktop, seconds: 5, remote_desktop: {}}
                  - screen_text: {contains: "ionlab-cde348"}
                  - screen_text: {contains: ready, within_seconds: 5, source: remote_desktop, password_file: /root/pw}
                  - dbus_name: {name: org.example.Portal, user: desktop}
              - desktop: {key: super+Return}
              - desktop: {type: "echo hi\\n"}
              - desktop: {wait_text: hi}
            """, file: "d.yaml")
        #expect(spec.workflow[0].operation == .verify([
            .portalSession(PortalSessionProbe(user: "desktop", seconds: 3, terminalKeys: nil)),
            .portalSession(PortalSessionProbe(user: "desktop", seconds: 5, terminalKeys: "super+Return")),
            .screenText(ScreenTextProbe(contains: "ionlab-cde348", withinSeconds: 30, source: .hypervisor)),
            .screenText(ScreenTextProbe(contains: "ready", withinSeconds: 5, source: .remoteDesktop(port: 5900, passwordFile: "/root/pw"))),
            .dbusName("org.example.Portal", user: "desktop"),
        ]))
        #expect(spec.workflow[1].operation == .desktop(.key(try KeyChord(parsing: "super+Return"))))
        #expect(spec.workflow[2].operation == .desktop(.type("echo hi\n")))
        #expect(spec.workflow[3].operation == .desktop(.waitText("hi", withinSeconds: 30)))
        #expect(spec.workflow.map(\.name) == ["verify portal session of desktop, portal session of desktop with remote desktop, screen text 'ionlab-cde348', screen text 'ready' on port 5900, D-Bus org.example.Portal of desktop",
                                               "press super+Return", "type 8 character(s)", "wait for 'hi' on the screen"])
        // What a step was is what the store compares on the next `up`: it writes back as it read.
        let again = try JSONDecoder().decode(FleetSpec.self, from: try JSONEncoder().encode(spec))
        #expect(again.workflow == spec.workflow)
    }

    @Test func recipeProblemsNameTheRecipeFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-recipe-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "name: r\nsteps:\n  - exec: [\"true\"]\n    timeout: 5\n".write(toFile: "\(directory)/r.yaml", atomically: true, encoding: .utf8)
        try "name: f\nimage: i\ncount: 1\nworkflow:\n  - recipe: r.yaml\n  - recipe: gone.yaml\n"
            .write(toFile: "\(directory)/f.yaml", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError(file: "\(directory)/r.yaml", line: 4, field: "steps[0].timeout", problem: "unknown field")) {
            try FleetSpec.load(path: "\(directory)/f.yaml", context: nil)
        }
        try "name: r\nsteps:\n  - recipe: other.yaml\n".write(toFile: "\(directory)/r.yaml", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError(file: "\(directory)/r.yaml", line: 3, field: "steps[0].recipe", problem: "a recipe cannot include another recipe")) {
            try FleetSpec.load(path: "\(directory)/f.yaml", context: nil)
        }
        try "name: r\nsteps:\n  - exec: [\"true\"]\n".write(toFile: "\(directory)/r.yaml", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError(file: "\(directory)/f.yaml", line: 6, field: "workflow[1].recipe", problem: "no such recipe file \(directory)/gone.yaml")) {
            try FleetSpec.load(path: "\(directory)/f.yaml", context: nil)
        }
    }

    @Test func explicitVMsBackendListsAndDefaultStepNames() throws {
        let yaml = """
            name: lab
            backend: [a, b]
            image: img
            vms:
              - name: one
              - name: two
                memory_mib: 2048
            workflow:
              - package: [rustdesk]
              - service: {name: rustdesk, state: started}
              - recipe: recipes/rustdesk.yaml
                on_failure: continue
            """
        let spec = try StrictYAML.decode(FleetSpec.self, from: yaml, file: "f.yaml")
        #expect(spec.backend == .named(["a", "b"]))
        #expect(spec.vms == [FleetVM(name: "one"), FleetVM(name: "two", memoryMib: 2048)])
        #expect(spec.workflow.map(\.name) == ["install rustdesk", "rustdesk started", "recipe recipes/rustdesk.yaml"])
        #expect(spec.workflow[2].onFailure == .continue)
    }

    @Test func packagesServicesProbesAndRustDesk() throws {
        let yaml = """
            name: demo
            image: img
            count: 1
            workflow:
              - package: {url: "https://example.org/t.deb", sha256: "\(String(repeating: "ab", count: 32))"}
              - service: {name: portal, state: enabled, unit: portal.service, user: alice}
              - rustdesk: {version: "1.2.3", password: "long enough"}
              - verify:
                  - unit_active: rustdesk
                  - unit_active: {name: portal, user: alice}
                  - port: 8080
                  - dbus_interface: {path: /org/freedesktop/portal/desktop, interface: org.freedesktop.impl.portal.RemoteDesktop}
                  - rustdesk_id: true
              - verify:
                  - desktop: {user: desktop}
                  - desktop: {user: alice, within_seconds: 60}
            """
        let steps = try StrictYAML.decode(FleetSpec.self, from: yaml, file: "f.yaml").workflow
        #expect(steps[4].operation == .verify([.desktop(user: "desktop", withinSeconds: Probe.defaultDesktopWait), .desktop(user: "alice", withinSeconds: 60)]))
        #expect(steps[4].name == "verify desktop of desktop, desktop of alice")
        #expect(steps[0].operation == .package(.url("https://example.org/t.deb", sha256: String(repeating: "ab", count: 32))))
        #expect(steps[1].operation == .service(ServiceSpec(name: "portal", state: "enabled", unit: "portal.service", user: "alice")))
        guard case .rustdesk(let rustdesk) = steps[2].operation else { throw RecipeTestError.unexpected }
        #expect(rustdesk.package == .url("https://github.com/rustdesk/rustdesk/releases/download/1.2.3/rustdesk-1.2.3-x86_64.deb", sha256: nil))
        #expect(steps[3].operation == .verify([.unitActive("rustdesk", user: nil), .unitActive("portal", user: "alice"), .port(8080),
                                               .dbusInterface(path: "/org/freedesktop/portal/desktop", interface: "org.freedesktop.impl.portal.RemoteDesktop"),
                                               .rustdeskID]))
        #expect(steps[3].name == "verify unit rustdesk, unit portal of alice, port 8080, D-Bus org.freedesktop.impl.portal.RemoteDesktop, RustDesk ID")
    }

    enum RecipeTestError: Error { case unexpected }

    @Test(arguments: [
        ("name: f\nimage: i\n", "f.yaml:1: count: missing required field"),
        ("name: f\nimage: i\ncount: 2\nvms: [{name: a}]\n", "f.yaml:4: vms: give count or vms, not both"),
        ("name: f\nimage: i\ncount: zero\n", "f.yaml:3: count: expected an integer, found 'zero'"),
        ("name: f\nimage: i\ncount: 0\n", "f.yaml:3: count: must be in 1...1000, found 0"),
        ("name: f\ncount: 1\n", "f.yaml:1: image: missing required field"),
        ("name: f\nimage: i\ncount: 1\ncolour: red\n", "f.yaml:4: colour: unknown field"),
        ("name: f\nimage: i\ncount: 1\nresources:\n  memory_mib: 64\n", "f.yaml:5: resources.memory_mib: must be in 128...262144, found 64"),
        ("name: f\nimage: i\nvms: [{name: a}, {name: a}]\n", "f.yaml:3: vms: VM 'a' is listed twice"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - name: nothing\n", "f.yaml:5: workflow[0]: a step needs one of exec, copy, package, service, verify, rustdesk, recipe, desktop"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - exec: [a]\n    package: [b]\n", "f.yaml:5: workflow[0]: a step takes one operation, found exec and package"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - exec: [a]\n    on_failure: maybe\n", "f.yaml:6: workflow[0].on_failure: expected stop, continue or retry:N (N in 1...10), found 'maybe'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - service: {name: x, state: dancing}\n", "f.yaml:5: workflow[0].service.state: expected started, restarted, stopped or enabled, found 'dancing'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - package: {deb: a.deb, url: \"https://x/a.deb\"}\n", "f.yaml:5: workflow[0].package: give one of names, deb or url"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - package: {url: \"ftp://x/a.deb\"}\n", "f.yaml:5: workflow[0].package.url: expected an http or https URL, found 'ftp://x/a.deb'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - package: {url: \"https://x/a.deb\", sha256: abc}\n", "f.yaml:5: workflow[0].package.sha256: expected 64 hex digits, found 'abc'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - port: 70000\n", "f.yaml:6: workflow[0].verify[0].port: must be in 1...65535, found 70000"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - socket: 80\n", "f.yaml:6: workflow[0].verify[0]: a probe is one of unit_active, process, port, command, dbus_name, dbus_interface, rustdesk_id, desktop, remote_desktop, portal_session, screen_text"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - {port: 80, process: x}\n", "f.yaml:6: workflow[0].verify[0]: a probe is one of unit_active, process, port, command, dbus_name, dbus_interface, rustdesk_id, desktop, remote_desktop, portal_session, screen_text"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - rustdesk: {password: short}\n", "f.yaml:5: workflow[0].rustdesk.password: must be 8 to 128 printable characters, not starting with '-'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - service: {name: \"a b\", state: started}\n", "f.yaml:5: workflow[0].service.name: expected a systemd unit name, found 'a b'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - exec: [a]\n    timeout: 5\n", "f.yaml:6: workflow[0].timeout: unknown field"),
        // Issue 9, item 11: names reach apt, systemctl and busctl as arguments; one that reads as an option,
        // or is not a name those tools accept, is refused where it is written.
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - package: [curl, \"-oAPT::Get::AllowUnauthenticated=1\"]\n",
         "f.yaml:5: workflow[0].package: expected a Debian package name (such as curl, libfoo1:amd64, curl=7.88.1-10), found '-oAPT::Get::AllowUnauthenticated=1'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - package: {names: [\"curl; reboot\"]}\n",
         "f.yaml:5: workflow[0].package.names: expected a Debian package name (such as curl, libfoo1:amd64, curl=7.88.1-10), found 'curl; reboot'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - service: {name: \"--now\", state: started}\n", "f.yaml:5: workflow[0].service.name: expected a systemd unit name, found '--now'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - service: {name: x, state: started, user: \"-r\"}\n", "f.yaml:5: workflow[0].service.user: expected a login name, found '-r'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - dbus_interface: {path: /a, interface: \"org.x *\"}\n",
         "f.yaml:6: workflow[0].verify[0].dbus_interface: expected a D-Bus interface name such as org.freedesktop.impl.portal.RemoteDesktop, found 'org.x *'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - dbus_name: \"--address=unix:path=/tmp/x\"\n",
         "f.yaml:6: workflow[0].verify[0].dbus_name: expected a D-Bus name such as org.freedesktop.portal.Desktop, found '--address=unix:path=/tmp/x'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - desktop: {user: \"-r\"}\n", "f.yaml:6: workflow[0].verify[0].desktop: expected a login name, found '-r'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - desktop: {user: d, within_seconds: 99999}\n", "f.yaml:6: workflow[0].verify[0].desktop: must be in 0...3600, found 99999"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - rustdesk: {id_server: \"--help\"}\n", "f.yaml:5: workflow[0].rustdesk.id_server: expected a printable value not starting with '-', found '--help'"),
        // Issue 22: the desktop's probes and steps, each refused where it is written.
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - portal_session: {user: \"-r\"}\n",
         "f.yaml:6: workflow[0].verify[0].portal_session.user: expected a login name, found '-r'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - portal_session: {user: d, seconds: 600}\n",
         "f.yaml:6: workflow[0].verify[0].portal_session.seconds: must be in 0...60, found 600"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - portal_session: {user: d, remote_desktop: {terminal_keys: \"hyper+x\"}}\n",
         "f.yaml:6: workflow[0].verify[0].portal_session.remote_desktop: 'hyper' is not a key ionlab knows (super, ctrl, alt, shift, Return, Tab, Escape, space, BackSpace, Delete, Insert, Home, End, Left, Up, Right, Down, PageUp, PageDown, F1 to F12, or one character) in 'hyper+x'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - screen_text: {contains: \"  \"}\n",
         "f.yaml:6: workflow[0].verify[0].screen_text.contains: expected 1 to 256 printable characters to look for on the screen"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - screen_text: {contains: x, source: camera}\n",
         "f.yaml:6: workflow[0].verify[0].screen_text.source: expected screen or remote_desktop, found 'camera'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - screen_text: {contains: x, port: 5900}\n",
         "f.yaml:6: workflow[0].verify[0].screen_text.port: goes with source: remote_desktop"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - verify:\n      - dbus_name: {name: org.x.Y, user: \"-r\"}\n",
         "f.yaml:6: workflow[0].verify[0].dbus_name: expected a login name, found '-r'"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - desktop: {key: super+Return, type: x}\n", "f.yaml:5: workflow[0].desktop: give one of key, type or wait_text"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - desktop: {type: \"caf\u{e9}\"}\n",
         "f.yaml:5: workflow[0].desktop.type: expected 1 to 4096 characters of printable ASCII, tabs and line breaks (what a US keyboard types)"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - desktop: {key: x, within_seconds: 5}\n", "f.yaml:5: workflow[0].desktop.within_seconds: goes with wait_text"),
        ("name: f\nimage: i\ncount: 1\nworkflow:\n  - desktop: {wait_text: x, within_seconds: 7200}\n", "f.yaml:5: workflow[0].desktop.within_seconds: must be in 0...3600, found 7200"),
    ])
    func badFleetSpecsAreLocated(yaml: String, expected: String) {
        #expect(rejection(FleetSpec.self, yaml, file: "f.yaml") == expected)
    }
}
