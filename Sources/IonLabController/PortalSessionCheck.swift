import Foundation
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabConfig
import IonLabPictureTools
import IonLabPictures
import IonLabSpec

/// The `portal_session` probe: the guest opens a ScreenCast session through xdg-desktop-portal's frontend as
/// the desktop user (`portal-session.py`) and keeps the frames PipeWire gives it; the controller judges them.
/// The last frame must be the screen the hypervisor shows then, within ``comparison``; with RemoteDesktop, OCR
/// on this host must read the marker the guest typed through the portal on that frame. What the guest says of
/// its own screen decides nothing.
extension WorkflowRunner {
    /// Frames and the hypervisor's screenshot may differ in a cursor drawn or not, never in a window.
    static let portalComparison = PictureComparison()
    /// A PipeWire frame as a PNG: a screen up to 8K.
    static let framePictureLimit = 64 << 20

    func portalSession(_ probe: PortalSessionProbe, label: String) async -> ProbeVerdict {
        let directory = "/run/ionlab/portal-\(Format.newJobID())"
        let verdict = await judgePortalSession(probe, label: label, directory: directory)
        _ = try? await run(["rm", "-rf", "--", directory], timeout: 30)
        return verdict
    }

    private func judgePortalSession(_ probe: PortalSessionProbe, label: String, directory: String) async -> ProbeVerdict {
        do {
            guard let screens else { throw StepFailure(message: "this controller has no access to VM screens") }
            let keys = try probe.terminalKeys.map { try KeyChord(parsing: $0) }
            let marker = keys == nil ? nil : TypedMarker.make()
            _ = try await exec(["mkdir", "-p", "-m", "0755", "/run/ionlab"], timeout: 30)
            let script = GuestScripts.portalSession(user: probe.user, directory: directory, seconds: probe.seconds,
                                                    keysyms: keys?.keysyms, marker: marker.map { "echo \($0)" })
            // The pointer moves meanwhile, through the hypervisor: wlroots' portal sends a frame only when the
            // screen changes, and a still desktop would give none. It stops before the guest's last frame.
            let stirring = Task { [vm] in try await screens.stirPointer(of: vm, for: Double(probe.seconds) + 8) }
            let result: ExecResult
            do {
                result = try await run(try script.argv(), timeout: 180, reports: true)
            } catch {
                stirring.cancel()
                throw error
            }
            stirring.cancel()  // a session that failed early needs no more frames; one that ran has waited it out
            let stirred = await stirring.result
            guard result.outcome == .completed, [0, 1].contains(result.exitCode) else {
                throw StepFailure(message: "portal-session.py \(result.summary)", output: result.outputTail, timedOut: result.outcome == .timedOut)
            }
            let report = try decode(script, result)
            guard report.ok else {
                return ProbeVerdict(label: label, passed: false,
                                    detail: "the portal session failed at \(report.step ?? "?"): \(report.detail ?? "no detail")")
            }
            let frames = try await framePictures(report.pictures ?? [], in: directory)
            guard let first = frames.first, let last = frames.last else { throw StepFailure(message: "the guest kept no frame") }
            let screen = try await screens.screen(of: vm)
            let match = Self.portalComparison.compare(last, with: screen)
            var read: ScreenText?
            if let marker { read = try await ScreenTextReader().find(marker, on: last, toleratingEdits: TypedMarker.toleratedMisreads) }
            let saved = try await keepPortalPictures(first: first, last: last, screen: screen, frames: frames)
            var facts = saved
            let fps = (report.windowSeconds ?? 0) > 0 ? Double(max(0, (report.frames ?? 1) - 1)) / report.windowSeconds! : 0
            facts["portal.setup_ms"] = String(Int((report.setupSeconds ?? 0) * 1000))
            facts["portal.first_frame_ms"] = String(Int((report.firstFrameSeconds ?? 0) * 1000))
            facts["portal.frames_per_second"] = String(format: "%.1f", fps)
            try? store.recordFacts(facts, vm: vm)

            var detail = String(format: "ScreenCast set up in %.2f s, first frame in %.2f s, %d frame(s) in %d s (%.1f a second)",
                                report.setupSeconds ?? 0, report.firstFrameSeconds ?? 0, report.frames ?? 0, Int(report.windowSeconds ?? 0), fps)
            detail += "; the last frame against the hypervisor's screen: \(match.summary)"
            if case .failure(let error) = stirred, !(error is CancellationError) {
                detail += "; the pointer did not move (\(AdminHandler.describe(error)))"
            }
            if let marker, let read {
                detail += String(format: "; RemoteDesktop granted device types %d, the terminal showed %.2f s after its keys, OCR read in %.1f s",
                                 report.devices ?? 0, report.inputToFrameSeconds ?? 0, read.seconds)
                guard let seen = read.reading(of: marker, toleratingEdits: TypedMarker.toleratedMisreads) else {
                    return ProbeVerdict(label: label, passed: false, detail: "the marker \(marker) typed through the portal is not on its last frame; OCR read: '\(Format.oneLine(read.oneLine, limit: 300))'; " + detail)
                }
                detail += " " + TypedMarker.described(marker, readAs: seen)
            }
            guard match.matches else {
                return ProbeVerdict(label: label, passed: false, detail: "the portal's frame is not the screen the hypervisor shows: " + detail)
            }
            return ProbeVerdict(label: label, passed: true, detail: detail)
        } catch let failure as StepFailure {
            return ProbeVerdict(label: label, passed: false, detail: failure.message + (failure.output.isEmpty ? "" : ": " + Self.lastLines(failure.output, count: 2)))
        } catch {
            return ProbeVerdict(label: label, passed: false, detail: AdminHandler.describe(error))
        }
    }

    /// The frames the guest kept, read from its directory and decoded: only the names the script writes, each
    /// a PNG within ``framePictureLimit`` and a screen's size.
    private func framePictures(_ names: [String], in directory: String) async throws -> [Picture] {
        let wanted = names.filter { $0 == "first.png" || $0 == "last.png" || $0.wholeMatch(of: /frame-[0-9]{2}\.png/) != nil }
        guard wanted.first == "first.png", wanted.last == "last.png", wanted.count <= 16 else {
            throw StepFailure(message: "the guest listed frames ionlab does not take: \(Format.oneLine(names.joined(separator: ", "), limit: 200))")
        }
        var pictures: [Picture] = []
        for name in wanted {
            let bytes = try await agent.read("\(directory)/\(name)", limit: Self.framePictureLimit, on: vm, patience: 30)
            do {
                pictures.append(try Picture(png: bytes))
            } catch {
                throw StepFailure(message: "the guest's frame \(name): \(error)")
            }
        }
        return pictures
    }

    /// The first and last frames, the hypervisor's screen and the session as an animated PNG, as `picture.*` facts.
    private func keepPortalPictures(first: Picture, last: Picture, screen: Picture, frames: [Picture]) async throws -> [String: String] {
        guard let pictures else { return [:] }
        let shelf = VMPictures(root: pictures, vm: vm)
        let names = PictureFacts.portalSession
        var facts = [
            PictureFacts.prefix + names[0]: try shelf.save(first, as: "portal-first"),
            PictureFacts.prefix + names[1]: try shelf.save(last, as: "portal-last"),
            PictureFacts.prefix + names[2]: try shelf.save(screen, as: "portal-hypervisor"),
        ]
        do {
            facts[PictureFacts.prefix + names[3]] = try await shelf.animate(frames, as: "portal-session")
        } catch {
            events.emit(.warning, agent: vm, "the portal session's animation was not made: \(error)")
        }
        return facts
    }
}
