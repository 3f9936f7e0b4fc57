import IonLabAdminAPI
import IonLabCommandLine

/// The demo's last part: a table of what each VM reported (its facts, its pictures by name, how many probes
/// passed), then each VM's verdicts a line each. A verdict and a picture's path are too long for a cell: in
/// the table they made every row wider than a terminal.
enum DemoSummary {
    /// `vms` in the order to show them; `verifications`: each VM's last `verify.complete` event.
    static func render(_ vms: [VMRecord], verifications: [String: Event]) -> String {
        let facts = Set(vms.flatMap(\.facts.keys)).filter { !isPicture($0) }.sorted()
        let withPictures = vms.contains { !pictures(of: $0).isEmpty }
        let header = ["VM"] + facts.map { $0.uppercased() } + (withPictures ? ["PICTURES"] : []) + ["VERIFY"]
        let rows = vms.map { vm in
            [vm.name] + facts.map { vm.facts[$0] ?? "-" } + (withPictures ? [pictures(of: vm).joined(separator: ", ").nonEmpty ?? "-"] : [])
                + [counts(verifications[vm.name])]
        }
        var text = Table.render(header, rows)
        for vm in vms {
            guard let lines = verdictLines(verifications[vm.name]) else { continue }
            text += "\n\n" + ([Format.escaped(vm.name)] + lines).joined(separator: "\n")
        }
        return text
    }

    /// The names of a VM's pictures (`first`, `after_input`), from its `picture.NAME` facts.
    static func pictures(of vm: VMRecord) -> [String] {
        vm.facts.keys.filter(isPicture).map { String($0.dropFirst(picturePrefix.count)) }.sorted { order($0) < order($1) }
    }

    /// `3/4 passed`, from the event's counts; from its message when the event has no detail (one whose detail
    /// was too big to keep has its counts at the start of the message).
    static func counts(_ event: Event?) -> String {
        guard let event else { return "-" }
        if case .verification(let detail) = event.detail { return "\(detail.passed)/\(detail.probes) passed" }
        return Format.escaped(String(event.message.prefix { $0 != ":" }))
    }

    /// A line per probe (`ok      port 8080 (accepts on 127.0.0.1)`), indented under the VM's name; the
    /// message as one line for an event without verdicts.
    static func verdictLines(_ event: Event?) -> [String]? {
        guard let event else { return nil }
        guard case .verification(let detail) = event.detail, let verdicts = detail.verdicts else {
            return ["  " + Format.escaped(event.message)]
        }
        return verdicts.map { "  \($0.passed ? "ok    " : "FAILED")  \(Format.escaped($0.label)) (\(Format.escaped($0.detail)))" }
    }

    private static let picturePrefix = "picture."

    private static func isPicture(_ fact: String) -> Bool { fact.hasPrefix(picturePrefix) }

    /// The first frame before the one after the input; others after both, by name.
    private static func order(_ name: String) -> String {
        switch name {
        case "first": "0"
        case "after_input": "1"
        default: "2" + name
        }
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
