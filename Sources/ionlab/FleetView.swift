import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabSpec
import IonLabWire
import NIOConcurrencyHelpers

/// How `ionlab up` shows a fleet: a live table on a terminal (one line per VM: phase, elapsed time, last
/// event), plain timestamped lines otherwise, or JSON lines; then the summary.
final class FleetView: Sendable {
    enum Mode { case live, lines, json }

    struct Row {
        var vm: String
        var phase = "waiting"
        var last = ""
        var started: Date?
        var ended: Date?
    }

    let mode: Mode
    private let fleet: String
    private let stepCount: Int
    private let started = Date()
    private let rows: NIOLockedValueBox<[Row]>
    private let drawn = NIOLockedValueBox(0)

    init(fleet spec: FleetSpec, mode: Mode) {
        self.mode = mode
        fleet = spec.name
        stepCount = spec.workflow.count
        rows = NIOLockedValueBox(spec.vms.map { Row(vm: $0.name) })
    }

    func show(_ event: Event) {
        switch mode {
        case .json:
            Terminal.line(JSONOutput.line(event))
            Terminal.flush()
        case .lines:
            Terminal.line(String(format: "%7.1fs  %@  %@  %@", Date().timeIntervalSince(started), event.agent ?? fleet, event.kind.rawValue, Format.escaped(event.message)))
            Terminal.flush()
        case .live:
            update(event)
            redraw()
        }
    }

    private func update(_ event: Event) {
        guard let agent = event.agent else { return }
        rows.withLockedValue { rows in
            guard let index = rows.firstIndex(where: { $0.vm == agent }) else { return }
            if rows[index].started == nil { rows[index].started = event.time }
            if let phase = Self.phase(of: event, steps: stepCount) { rows[index].phase = phase }
            if [EventKind.vmWorkflowDone, .error].contains(event.kind) { rows[index].ended = event.time }
            rows[index].last = event.message
        }
    }

    static func phase(of event: Event, steps: Int) -> String? {
        switch event.kind {
        case .vmProvisioning: return "provisioning"
        case .vmStarted: return "booting"
        case .vmKernelUp: return "kernel up"
        case .vmCloudInit: return "cloud-init"
        case .vmCloudInitNetwork: return "cloud-init network"
        case .vmAgentInstalled: return "agent installed"
        case .vmReady: return "ready"
        case .vmAdopted: return "adopted"
        case .stepStarted, .stepSkipped:
            guard case .step(let step)? = event.detail else { return nil }
            return "step \(step.number)/\(steps)"
        case .vmWorkflowDone: return "ok"
        case .error:
            guard case .vmOutcome(let end)? = event.detail else { return "failed" }
            return end.result == .timedOut ? "timed out" : "failed"
        default: return nil
        }
    }

    /// Rewrites the table in place: the cursor goes back up over the lines drawn last time.
    func redraw() {
        guard mode == .live, drawn.withLockedValue({ $0 > 0 }) || rows.withLockedValue({ $0.contains { $0.started != nil } }) else { return }
        let width = Int(Terminal.columns())
        let now = Date()
        let lines = rows.withLockedValue { rows in
            ["\(fleet): \(Table.duration(now.timeIntervalSince(started)))"] + rows.map { row in
                let elapsed = row.started.map { Table.duration((row.ended ?? now).timeIntervalSince($0)) } ?? "-"
                let text = "  " + row.vm.padding(toLength: 16, withPad: " ", startingAt: 0) + "  "
                    + row.phase.padding(toLength: 16, withPad: " ", startingAt: 0) + "  "
                    + elapsed.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + Format.escaped(row.last)
                return String(text.prefix(max(20, width - 1)))
            }
        }
        var output = drawn.withLockedValue { previous in
            defer { previous = lines.count }
            return previous > 0 ? "\u{1B}[\(previous)A" : ""
        }
        for line in lines { output += "\r\u{1B}[2K" + line + "\n" }
        FileHandle.standardOutput.write(Data(output.utf8))
    }

    /// The last drawing, then the summary table (or the report as a JSON line).
    func finish(_ report: FleetReport) {
        if mode == .json {
            Terminal.line(JSONOutput.line(report))
            return
        }
        redraw()
        Terminal.line("")
        Terminal.line(Table.render(["VM", "BACKEND", "RESULT", "TIME", "STEPS RUN", "SKIPPED", "FAILED STEP"], report.vms.map { vm in
            [vm.vm, vm.backend, vm.result.rawValue, Table.duration(vm.seconds), String(vm.stepsRun), String(vm.stepsSkipped), vm.failedStep ?? "-"]
        }))
        for vm in report.vms where !vm.notes.isEmpty {
            Terminal.line("\n\(vm.vm): " + vm.notes.joined(separator: "\n  "))
        }
        for vm in report.vms where vm.result != .ok {
            Terminal.line("\n\(vm.vm): \(vm.result.rawValue) at \(vm.failedStep ?? "?"):")
            for line in (vm.detail ?? "").split(whereSeparator: \.isNewline) { Terminal.line("  | \(line)") }
        }
        let ok = report.vms.filter { $0.result == .ok }.count
        let share = 100 * report.controllerCPUSeconds / max(report.seconds, 0.001)
        Terminal.line("\nfleet \(report.fleet): \(ok) of \(report.vms.count) VM(s) ok in \(String(format: "%.1f", report.seconds))s "
              + "(\(report.created) created, \(report.adopted) adopted); controller CPU \(String(format: "%.2f", report.controllerCPUSeconds))s, "
              + "\(String(format: "%.1f", share))% of the wall time")
    }
}
