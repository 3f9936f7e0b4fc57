import Foundation
import IonLabConfig
import IonLabAgentProtocol
import IonLabWire

/// Formatting shared by the controller and the CLI.
public enum Format {
    public static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// A time for a file name, in UTC and sortable: `20261201-122121`.
    public static func fileStamp(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// A one-line description of any error, for logs and refusals, with control characters escaped.
    public static func error(_ error: Error) -> String {
        let text = "\(error)"
        return escaped(text.split(whereSeparator: \.isNewline).joined(separator: " "))
    }

    /// Text from a peer made safe for a terminal or a log (``SafeText``).
    public static func escaped(_ text: String, keepingNewlines: Bool = false) -> String {
        SafeText.escaped(text, keepingNewlines: keepingNewlines)
    }

    /// Text for one line of an event: line breaks shown as " ⏎ ", at most `limit` characters.
    public static func oneLine(_ text: String, limit: Int = 240) -> String {
        let flat = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ⏎ ")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }

    public static func newJobID() -> String {
        "j-" + (0..<6).map { _ in UInt8.random(in: 0 ... 255) }.hexString
    }
}

/// Health in a line.
public enum HealthText {
    public static func summary(_ health: Health) -> String {
        let load = health.load.first.map { String(format: "%.2f", $0) } ?? "?"
        return "load \(load), memory \(health.memoryAvailableBytes >> 20) of \(health.memoryTotalBytes >> 20) MiB free, "
            + "disk \(health.diskFreeBytes >> 20) of \(health.diskTotalBytes >> 20) MiB free, cloud-init \(health.cloudInit ?? "absent")"
    }
}
