import IonLabAdminAPI
import IonLabCommandLine

/// The demo's last part: a table of what each VM reported (its facts, how many pictures it kept, how many probes
/// passed), then under each VM its verdicts a line each, its pictures by name and its measurements. A verdict,
/// a list of pictures or of timings is too long for a cell: in the table they made every row wider than a terminal.
enum DemoSummary {
    /// `vms` in the order to show them; `verifications`: each VM's `verify.complete` events (``VerificationDetail/latest(_:steps:)``).
    static func render(_ vms: [VMRecord], verifications: [String: [Event]]) -> String {
        let facts = Set(vms.flatMap(\.facts.keys)).filter { !isPicture($0) && !isMeasurement($0) }.sorted()
        let withPictures = vms.contains { !pictures(of: $0).isEmpty }
        let header = ["VM"] + facts.map { $0.uppercased() } + (withPictures ? ["PICTURES"] : []) + ["VERIFY"]
        let rows = vms.map { vm in
            [vm.name] + facts.map { vm.facts[$0] ?? "-" } + (withPictures ? [pictureCount(of: vm)] : []) + [counts(verifications[vm.name] ?? [])]
        }
        var text = Table.render(header, rows)
        for vm in vms {
            var lines = (verifications[vm.name] ?? []).flatMap(verdictLines)
            let named = pictures(of: vm).map { PictureFacts.animated.contains($0) ? "\($0) (animated)" : $0 }
            if !named.isEmpty { lines.append("  pictures  " + named.joined(separator: ", ")) }
            let measured = vm.facts.keys.filter(isMeasurement).sorted().map { "\($0) \(vm.facts[$0] ?? "")" }
            if !measured.isEmpty { lines.append("  measured  " + Format.escaped(measured.joined(separator: ", "))) }
            if !lines.isEmpty { text += "\n\n" + ([Format.escaped(vm.name)] + lines).joined(separator: "\n") }
        }
        return text
    }

    /// "7, 2 animated", or "-".
    static func pictureCount(of vm: VMRecord) -> String {
        let names = pictures(of: vm)
        guard !names.isEmpty else { return "-" }
        let animated = names.filter(PictureFacts.animated.contains).count
        return animated == 0 ? "\(names.count)" : "\(names.count), \(animated) animated"
    }

    /// A timing or a rate a probe measured (`remote_desktop.connect_ms`, `portal.frames_per_second`): shown under
    /// the VM, not as a column.
    static func isMeasurement(_ fact: String) -> Bool { fact.hasSuffix("_ms") || fact.hasSuffix("_per_second") }

    /// The names of a VM's pictures (`first`, `after_input`), from its `picture.NAME` facts: the remote-desktop
    /// probe's in the order taken, then any others by name.
    static func pictures(of vm: VMRecord) -> [String] {
        let taken = PictureFacts.all
        return vm.facts.keys.filter(isPicture).map { String($0.dropFirst(PictureFacts.prefix.count)) }
            .sorted { (taken.firstIndex(of: $0) ?? taken.count, $0) < (taken.firstIndex(of: $1) ?? taken.count, $1) }
    }

    /// `3/4 passed` over all the VM's verify steps; `-` when none ran.
    static func counts(_ events: [Event]) -> String {
        let counted = events.compactMap(counts)
        guard !counted.isEmpty else { return "-" }
        return "\(counted.map(\.passed).reduce(0, +))/\(counted.map(\.probes).reduce(0, +)) passed"
    }

    /// An event's counts: from its detail, or from its message (`3/4 passed: …`, which the controller writes)
    /// when its detail was too big to keep.
    private static func counts(_ event: Event) -> (passed: Int, probes: Int)? {
        if let detail = verification(of: event) { return (detail.passed, detail.probes) }
        let numbers = event.message.prefix { $0 != " " }.split(separator: "/").compactMap { Int($0) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }

    /// A line per probe (`ok      port 8080 (accepts on 127.0.0.1)`), indented under the VM's name; the
    /// message as one line for an event without verdicts.
    static func verdictLines(_ event: Event) -> [String] {
        guard let verdicts = verification(of: event)?.verdicts else {
            return ["  " + Format.escaped(event.message)]
        }
        return verdicts.map { "  \($0.passed ? "ok    " : "FAILED")  \(Format.escaped($0.label)) (\(Format.escaped($0.detail)))" }
    }

    private static func verification(of event: Event) -> VerificationDetail? { VerificationDetail.of(event) }

    private static func isPicture(_ fact: String) -> Bool { fact.hasPrefix(PictureFacts.prefix) }
}
