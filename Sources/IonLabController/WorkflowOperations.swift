import Foundation
import IonLabAdminAPI
import IonLabConfig
import IonLabPictureTools
import IonLabPictures
import IonLabProvision
import IonLabRFB
import IonLabSpec
import IonLabWire

/// The built-in operations of workflow steps, each run in the VM through its agent (see ``GuestScripts``).
extension WorkflowRunner {
    /// Performs one step and returns a one-line account of it; throws `StepFailure`.
    func perform(_ step: WorkflowStep, jobID: String, notes: inout [String]) async throws -> String {
        let timeout = step.timeoutSeconds
        switch step.operation {
        case .exec(let argv):
            let result = try await exec(argv, jobID: jobID, timeout: timeout)
            return "exit 0 in \(String(format: "%.1f", result.durationSeconds))s"
        case .copy(let from, let to, let exclude):
            events.emit(.deploying, agent: vm, "copying \(from) to \(to)" + (exclude.isEmpty ? "" : " without \(exclude.joined(separator: " "))"))
            let summary = try await withStepDeadline(timeout) { try await self.upload(from, to: to, exclude: exclude) }
            events.emit(.deployed, agent: vm, "\(summary.files) file(s), \(summary.bytes) bytes at \(summary.path), sha256 verified",
                        detail: .transfer(summary))
            return "copied \(summary.files) file(s), \(summary.bytes) bytes, sha256 verified"
        case .package(let source):
            return "installed " + (try await install(source, jobID: jobID, timeout: timeout))
        case .service(let service):
            return try await bring(service, jobID: jobID, timeout: timeout)
        case .verify(let probes):
            return try await verify(probes, step: step.name, jobID: jobID, timeout: timeout)
        case .rustdesk(let spec):
            return try await rustdesk(spec, jobID: jobID, timeout: timeout, notes: &notes)
        case .recipe(let path):
            throw StepFailure(message: "recipe \(path) was not expanded (the CLI expands recipes when it loads the spec)")
        case .desktop(let input):
            guard let screens else { throw StepFailure(message: "this controller has no access to VM screens") }
            let result = try await withStepDeadline(timeout) { [vm, pictures, store] in
                try await DesktopDriver(screens: screens, pictures: pictures, store: store).perform(input, on: vm)
            }
            guard result.found != false else { throw StepFailure(message: result.summary) }
            return result.summary
        }
    }

    /// Installs packages and returns "NAME VERSION, …" as dpkg reports them.
    func install(_ source: PackageSource, jobID: String, timeout: Double) async throws -> String {
        events.emit(.packageInstalling, agent: vm, "installing \(source.summary)", detail: .packages(PackagesDetail(source: source.summary, installed: [])))
        let script: GuestScript<GuestScripts.Installed>
        switch source {
        case .names(let names):
            script = GuestScripts.installNames(names)
        case .deb(let path):
            let remote = "\(GuestScripts.packageDirectory)/\(URL(fileURLWithPath: path).lastPathComponent)"
            _ = try await exec(["mkdir", "-p", GuestScripts.packageDirectory], timeout: 30)
            _ = try await withStepDeadline(timeout) { try await self.upload(path, to: remote) }
            script = GuestScripts.installDeb(remote)
        case .url(let url, let sha256):
            let name = URL(string: url)?.lastPathComponent ?? "download.deb"
            let remote = "\(GuestScripts.packageDirectory)/\(name.hasSuffix(".deb") ? name : name + ".deb")"
            _ = try await run(GuestScripts.download(url, to: remote, sha256: sha256), timeout: timeout)
            script = GuestScripts.installDeb(remote)
        }
        let installed = try await run(script, jobID: jobID, timeout: timeout).lines
        let versions = installed.isEmpty ? source.summary : installed.joined(separator: ", ")
        events.emit(.packageInstalled, agent: vm, "installed \(versions)", detail: .packages(PackagesDetail(source: source.summary, installed: installed)))
        return versions
    }

    /// Installs the unit file when one is given, brings the unit to its state and reports its properties.
    func bring(_ service: ServiceSpec, jobID: String, timeout: Double) async throws -> String {
        if let unit = service.unit {
            _ = try await run(GuestScripts.requireSystemd, timeout: 30)
            let directory = GuestScripts.unitDirectory(user: service.user)
            _ = try await exec(["mkdir", "-p", directory], timeout: 30)
            _ = try await withStepDeadline(timeout) { try await self.upload(unit, to: "\(directory)/\(URL(fileURLWithPath: unit).lastPathComponent)") }
            if let user = service.user { _ = try await exec(["chown", "-R", "\(user):", directory], timeout: 30) }
        }
        let state = try await run(GuestScripts.service(service, reload: service.unit != nil), jobID: jobID, timeout: timeout)
        let summary = "\(service.name) \(state.activeState)/\(state.subState), main PID \(state.mainPID)" + (service.user.map { " (user \($0))" } ?? "")
        if service.state != "stopped" {
            events.emit(.serviceStarted, agent: vm, summary,
                        detail: .service(ServiceDetail(unit: state.unit, activeState: state.activeState, subState: state.subState, mainPID: state.mainPID)))
        }
        return summary
    }

    /// Runs every probe: those of the guest in the VM (one script), a remote-desktop session from here. One
    /// verdict line for the VM, failing the step if a probe failed. A verdict carries the probe's own label,
    /// not the guest's echo of it, and a detail short enough that the event keeps every verdict.
    func verify(_ probes: [Probe], step: String, jobID: String, timeout: Double) async throws -> String {
        var guest = try await guestVerdicts(probes.filter(\.runsInGuest), jobID: jobID, timeout: timeout).makeIterator()
        let detailLimit = max(160, 12_000 / max(1, probes.count))
        var verdicts: [ProbeVerdict] = []
        for probe in probes {
            var verdict: ProbeVerdict
            if probe.runsInGuest, let reported = guest.next() {
                verdict = reported
            } else if case .remoteDesktop(let port, let keys, let passwordFile) = probe {
                verdict = await remoteDesktop(port: port, terminalKeys: keys, passwordFile: passwordFile, label: probe.label)
            } else if case .portalSession(let session) = probe {
                verdict = await portalSession(session, label: probe.label)
            } else if case .screenText(let wanted) = probe {
                verdict = await screenText(wanted, label: probe.label)
            } else {
                continue
            }
            verdict.label = probe.label
            verdict.detail = Format.oneLine(verdict.detail, limit: detailLimit)
            verdicts.append(verdict)
        }
        for (probe, verdict) in zip(probes, verdicts) where verdict.passed {
            if case .desktop = probe { events.emit(.desktopReady, agent: vm, "\(verdict.label): \(verdict.detail)") }
        }
        let line = verdicts.map { "\($0.label) \($0.passed ? "ok" : "FAILED") (\($0.detail))" }.joined(separator: "; ")
        let passed = verdicts.filter(\.passed).count
        events.emit(.verificationComplete, agent: vm, "\(passed)/\(probes.count) passed: \(line)",
                    detail: .verification(VerificationDetail(passed: passed, probes: probes.count, step: step, verdicts: verdicts)))
        guard passed == probes.count else { throw StepFailure(message: "verify: \(line)") }
        return "\(passed)/\(probes.count) passed: \(line)"
    }

    /// The guest's probes, in one run of the verify script.
    private func guestVerdicts(_ probes: [Probe], jobID: String, timeout: Double) async throws -> [ProbeVerdict] {
        guard !probes.isEmpty else { return [] }
        // Exit 1 means a probe failed, and the verdicts say which; anything else but 0 is the script's failure.
        let script = GuestScripts.verify(probes)
        let result = try await run(try script.argv(), jobID: jobID, timeout: timeout, reports: true)
        guard result.outcome == .completed, [0, 1].contains(result.exitCode) else {
            throw StepFailure(message: "verify \(result.summary)", output: result.outputTail, timedOut: result.outcome == .timedOut)
        }
        let verdicts = try decode(script, result).probes
        guard verdicts.count == probes.count else {
            throw StepFailure(message: "verify gave \(verdicts.count) verdicts for \(probes.count) probes", output: result.outputTail)
        }
        return verdicts
    }

    /// A viewer's session with the guest's VNC server, through the agent's channel (``RemoteDesktopCheck``);
    /// its two frames are kept as pictures and recorded as facts of the VM.
    func remoteDesktop(port: Int, terminalKeys: String, passwordFile: String?, label: String) async -> ProbeVerdict {
        do {
            let keys = try KeyChord(parsing: terminalKeys)
            let marker = TypedMarker.make()
            let password: [UInt8]? = if let passwordFile { try await readPassword(passwordFile) } else { nil }
            let stream = try await agent.connect(to: Endpoint(host: "127.0.0.1", port: port), on: vm, patience: 60)
            let result = try await withStepDeadline(RemoteDesktopCheck.deadline.seconds) {
                try await RemoteDesktopCheck(stream: stream, terminalKeys: keys, marker: "echo \(marker)", password: password).run()
            }
            // The marker's text, read off the second frame on this host: a screen that changed for another
            // reason (a crash dialog, a black screen) does not pass.
            let read = try await ScreenTextReader().find(marker, on: result.after, toleratingEdits: TypedMarker.toleratedMisreads)
            var saved = try savePictures([("remote-desktop-first", result.first), ("remote-desktop-after-input", result.after)])
            if let pictures {
                do {
                    saved.append(try await VMPictures(root: pictures, vm: vm).animate(result.frames, as: "remote-desktop-session"))
                } catch {
                    events.emit(.warning, agent: vm, "the remote-desktop session's animation was not made: \(error)")
                }
            }
            var facts = ["remote_desktop.screen": "\(result.width)x\(result.height)",
                         "remote_desktop.connect_ms": String(Int(result.connectSeconds * 1000)),
                         "remote_desktop.first_frame_ms": String(Int(result.firstFrameSeconds * 1000))]
            if let input = result.inputToScreenSeconds { facts["remote_desktop.input_to_screen_ms"] = String(Int(input * 1000)) }
            for (name, path) in zip(PictureFacts.remoteDesktop, saved) { facts[PictureFacts.prefix + name] = path }
            try? store.recordFacts(facts, vm: vm)
            let input = result.inputToScreenSeconds.map { String(format: "input on screen in %.2f s", $0) } ?? "no change seen after the input"
            let detail = String(format: "%d×%d '%@': connected in %.2f s, first frame in %.2f s (brightness variance %.0f), %@, %.1f%% of the screen changed, OCR read in %.1f s",
                                result.width, result.height, String(result.name.prefix(64)), result.connectSeconds, result.firstFrameSeconds,
                                result.variance, input, result.changedShare * 100, read.seconds) + (saved.isEmpty ? "" : "; pictures: " + saved.joined(separator: ", "))
            if result.variance < RemoteDesktopCheck.minimumVariance { return .init(label: label, passed: false, detail: "the first frame is blank: " + detail) }
            if result.changedShare < RemoteDesktopCheck.minimumChange {
                return .init(label: label, passed: false, detail: "the input did not change the screen: " + detail)
            }
            guard let seen = read.reading(of: marker, toleratingEdits: TypedMarker.toleratedMisreads) else {
                return .init(label: label, passed: false, detail: "the marker \(marker) it typed is not on the screen after the input; OCR read: '\(Format.oneLine(read.oneLine, limit: 300))'; " + detail)
            }
            return .init(label: label, passed: true, detail: detail + "; OCR read " + TypedMarker.described(marker, readAs: seen))
        } catch {
            return .init(label: label, passed: false, detail: AdminHandler.describe(error))
        }
    }

    /// The VNC password in the guest's `path`: its first line (a file that servers' tools write may end in a
    /// newline). It stays in memory: a job's output would be kept in events and the store.
    private func readPassword(_ path: String) async throws -> [UInt8] {
        let content = try await agent.read(path, limit: 1024, on: vm, patience: 60)
        let line = content.prefix { $0 != UInt8(ascii: "\n") }
        guard !line.isEmpty else { throw StepFailure(message: "the password file \(path) is empty") }
        return Array(line)
    }

    /// Writes frames as PNG under `pictures/VM/`; returns their paths.
    private func savePictures(_ frames: [(String, Picture)]) throws -> [String] {
        guard let pictures else { return [] }
        let shelf = VMPictures(root: pictures, vm: vm)
        return try frames.map { name, frame in try shelf.save(frame, as: name) }
    }

    /// The `screen_text` probe: waits until OCR reads the text on the hypervisor's screen or on frames of the
    /// guest's VNC server, and keeps the screen it read last.
    func screenText(_ probe: ScreenTextProbe, label: String) async -> ProbeVerdict {
        do {
            let take: @Sendable () async throws -> Picture
            var frames: RemoteFrames?
            switch probe.source {
            case .hypervisor:
                guard let screens else { throw StepFailure(message: "this controller has no access to VM screens") }
                take = { [vm] in try await screens.screen(of: vm) }
            case .remoteDesktop(let port, let passwordFile):
                let password: [UInt8]? = if let passwordFile { try await readPassword(passwordFile) } else { nil }
                let opened = try await RemoteFrames.open(try await agent.connect(to: Endpoint(host: "127.0.0.1", port: port), on: vm, patience: 60),
                                                         password: password)
                frames = opened
                take = { try await opened.next() }
            }
            defer { frames?.close() }
            let outcome = try await ScreenTextWait(take: take).wait(for: probe.contains, within: Double(probe.withinSeconds))
            if let pictures, let path = try? VMPictures(root: pictures, vm: vm).save(outcome.picture, as: "screen-text") {
                try? store.recordFacts([PictureFacts.prefix + "screen_text": path], vm: vm)
            }
            let readings = "\(outcome.readings) reading(s) in \(outcome.seconds.oneDecimal) s"
            guard outcome.found else {
                return .init(label: label, passed: false, detail: "not on the screen after \(readings); OCR read: '\(Format.oneLine(outcome.read.oneLine, limit: 300))'")
            }
            return .init(label: label, passed: true, detail: "read after \(readings)")
        } catch let failure as StepFailure {
            return .init(label: label, passed: false, detail: failure.message)
        } catch {
            return .init(label: label, passed: false, detail: AdminHandler.describe(error))
        }
    }

    /// Installs, configures and starts RustDesk, then reads its ID and records it with the VM.
    func rustdesk(_ spec: RustDeskSpec, jobID: String, timeout: Double, notes: inout [String]) async throws -> String {
        _ = try await install(spec.package, jobID: jobID, timeout: timeout)
        let password = spec.password ?? Self.generatedPassword()
        _ = try await run(GuestScripts.rustdeskConfigure(idServer: spec.idServer, relayServer: spec.relayServer, key: spec.key),
                          timeout: 60, stdin: password + "\n")
        if spec.password == nil { notes.append("RustDesk password (generated, shown once): \(password)") }
        let service = try await bring(ServiceSpec(name: "rustdesk", state: "enabled"), jobID: Format.newJobID(), timeout: timeout)
        let identity = try await run(GuestScripts.rustdeskID, timeout: 150)
        let (id, version) = (identity.id, identity.version.isEmpty ? "?" : identity.version)
        let facts = ["rustdesk.id": id, "rustdesk.version": version]
        try store.recordFacts(facts, vm: vm)
        events.emit(.remoteDesktopReady, agent: vm, "RustDesk \(version) ready, ID \(id)", detail: .facts(facts))
        return "RustDesk \(version), ID \(id); \(service)"
    }

    /// 16 characters from an alphabet without look-alikes.
    static func generatedPassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<16).map { _ in alphabet.randomElement()! })
    }
}
