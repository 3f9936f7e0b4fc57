import Foundation
import IonLabAdminAPI
import IonLabWire

/// Plain text tables and human units for the CLI.
public enum Table {
    /// Cells are escaped (they often hold what a guest reported) and kept to one line.
    public static func render(_ header: [String], _ rows: [[String]]) -> String {
        let rows = rows.map { $0.map { Format.escaped($0) } }
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    public static func bytes(_ value: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024, unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value)B" : String(format: amount < 10 ? "%.1f%@" : "%.0f%@", amount, units[unit])
    }

    public static func duration(_ seconds: Double) -> String {
        // A peer's number never traps the CLI: anything past a century reads as such.
        guard seconds.isFinite else { return "?" }
        let total = Int(min(max(seconds, 0), 100 * 365 * 86_400))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
        if total < 86_400 { return "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m" }
        return "\(total / 86_400)d\(total % 86_400 / 3600)h"
    }

    public static func ago(_ date: Date?) -> String {
        guard let date else { return "never" }
        return duration(max(0, Date().timeIntervalSince(date))) + " ago"
    }
}

/// JSON for `--json` output: ISO-8601 dates, sorted keys.
public enum JSONOutput {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Format.time(date))
        }
        return encoder
    }()

    /// One line of JSON, safe for a terminal and still JSON (``SafeText/jsonEscaped(_:)``): printing it through
    /// `Terminal.line` changes nothing.
    public static func line<T: Encodable>(_ value: T) -> String {
        SafeText.jsonEscaped(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
    }
}
