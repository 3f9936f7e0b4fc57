import Foundation
import IonLabAdminAPI

/// A fleet's report as one self-contained HTML page (`ionlab report FLEET -o FILE.html`): per VM its state, facts,
/// timeline, verdicts and pictures, the pictures embedded as data, no script, nothing fetched. It can be mailed,
/// archived or opened years later. Everything from a guest (facts, verdicts, names) is escaped: it reaches the
/// page as text, and the page's policy forbids anything but its own style and embedded images.
public struct FleetReportPage: Sendable {
    /// One embedded picture.
    public struct Image: Sendable {
        public var name: String
        public var png: [UInt8]
        public var animated: Bool

        public init(name: String, png: [UInt8], animated: Bool) {
            self.name = name
            self.png = png
            self.animated = animated
        }
    }

    public struct VM: Sendable {
        public var row: DashboardVM
        /// Its verify steps' last verdicts, in the workflow's order.
        public var verifications: [VerificationDetail]
        public var images: [Image]

        public init(row: DashboardVM, verifications: [VerificationDetail], images: [Image]) {
            self.row = row
            self.verifications = verifications
            self.images = images
        }
    }

    public var fleet: String
    public var generatedAt: Date
    public var vms: [VM]

    public init(fleet: String, generatedAt: Date, vms: [VM]) {
        self.fleet = fleet
        self.generatedAt = generatedAt
        self.vms = vms
    }

    /// The page's policy: its own inline style and `data:` images, nothing else (no script, no fetch, no frame).
    static let policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

    public func html() -> String {
        let passed = vms.map { $0.verifications.map(\.passed).reduce(0, +) }.reduce(0, +)
        let probes = vms.map { $0.verifications.map(\.probes).reduce(0, +) }.reduce(0, +)
        var page = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="\(Self.policy)">
            <title>ionlab report: \(h(fleet))</title>
            <style>\(Self.style)</style>
            </head>
            <body>
            <h1>Fleet <span class="name">\(h(fleet))</span></h1>
            <p class="summary">\(vms.count) VM(s), \(passed)/\(probes) probes passed. Made by ionlab at \(h(Self.timestamp(generatedAt))).</p>

            """
        for vm in vms { page += section(vm) }
        page += "</body>\n</html>\n"
        return page
    }

    private func section(_ vm: VM) -> String {
        let status = vm.row.status
        var lines = ["<section class=\"vm\" id=\"vm-\(h(status.name))\">",
                     "<h2>\(h(status.name)) <span class=\"state \(h(status.state.rawValue))\">\(h(vm.row.phase))</span></h2>",
                     "<p>backend \(h(status.backend)) · agent \(h(status.agent.rawValue)) · workflow \(h(status.step ?? "-"))</p>"]
        let facts = vm.row.facts.filter { !$0.key.hasPrefix(PictureFacts.prefix) }.sorted { $0.key < $1.key }
        if !facts.isEmpty {
            lines.append("<table class=\"facts\"><tr><th>fact</th><th>value</th></tr>")
            lines += facts.map { "<tr><td>\(h($0.key))</td><td>\(h($0.value))</td></tr>" }
            lines.append("</table>")
        }
        lines.append(timeline(vm.row.timeline))
        for verification in vm.verifications {
            lines.append("<h3>\(h(verification.step ?? "verify")): \(verification.passed)/\(verification.probes) passed</h3><ul class=\"verdicts\">")
            lines += (verification.verdicts ?? []).map { verdict in
                "<li class=\"\(verdict.passed ? "ok" : "failed")\"><b>\(verdict.passed ? "ok" : "FAILED")</b> \(h(verdict.label)) <span class=\"detail\">(\(h(verdict.detail)))</span></li>"
            }
            lines.append("</ul>")
        }
        if !vm.images.isEmpty {
            lines.append("<div class=\"pictures\">")
            lines += vm.images.map { image in
                "<figure><img alt=\"\(h(image.name)) of \(h(status.name))\" src=\"data:image/png;base64,\(Data(image.png).base64EncodedString())\">"
                    + "<figcaption>\(h(image.name))\(image.animated ? " (animated)" : "")</figcaption></figure>"
            }
            lines.append("</div>")
        }
        lines.append("</section>\n")
        return lines.joined(separator: "\n")
    }

    /// The boot's phases and the steps as bars on one scale, with their times.
    private func timeline(_ bars: [TimelineBar]) -> String {
        guard !bars.isEmpty else { return "" }
        let span = max(1, bars.map { $0.end ?? $0.start }.max() ?? 1)
        var lines = ["<table class=\"timeline\"><tr><th>phase or step</th><th>from</th><th>to</th><th></th></tr>"]
        for bar in bars {
            let end = bar.end ?? bar.start
            let left = bar.start / span * 100, width = max(0.5, (end - bar.start) / span * 100)
            lines.append("<tr class=\"\(bar.kind.rawValue) \(bar.outcome.rawValue)\"><td>\(h(bar.name))</td>"
                         + "<td>\(String(format: "%.1f", bar.start)) s</td><td>\(bar.end.map { String(format: "%.1f s", $0) } ?? "running")</td>"
                         + "<td class=\"track\"><div class=\"bar\" style=\"margin-left:\(String(format: "%.2f", left))%;width:\(String(format: "%.2f", width))%\"></div></td></tr>")
        }
        lines.append("</table>")
        return lines.joined(separator: "\n")
    }

    private func h(_ text: String) -> String { HTMLText.escape(text) }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static let style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1b1b1b;padding:0 1em}
        h1 .name,h2{font-family:ui-monospace,monospace}
        section.vm{border-top:2px solid #ccd;margin-top:2em;padding-top:.5em}
        .state{font-size:.7em;padding:.1em .5em;border-radius:.3em;background:#e7eefb}
        .state.failed{background:#fbe3e3}
        table{border-collapse:collapse;margin:.6em 0}
        td,th{border-bottom:1px solid #eee;padding:.15em .6em;text-align:left;vertical-align:top}
        table.timeline{width:100%}
        td.track{width:55%}
        .bar{height:.8em;background:#3d7bd9;border-radius:.2em}
        tr.step .bar{background:#5aa35a}
        tr.failed .bar{background:#d94b3d}
        tr.running .bar{background:#c9a227}
        ul.verdicts{list-style:none;padding-left:0}
        li.failed b{color:#b3261e}
        li.ok b{color:#2e7d32}
        .detail{color:#555;word-break:break-word}
        .pictures{display:flex;flex-wrap:wrap;gap:1em}
        figure{margin:0;max-width:48%}
        figure img{max-width:100%;border:1px solid #ccc}
        figcaption{font-family:ui-monospace,monospace;font-size:.9em}
        """
}

/// Text for HTML: the five characters that could open markup or end an attribute, escaped; control
/// characters shown as escapes.
enum HTMLText {
    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in Format.escaped(text).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
