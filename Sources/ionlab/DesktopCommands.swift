import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine
import IonLabConfig
import IonLabSpec

/// `ionlab desktop key | type | wait-text`: a VM's desktop driven through its hypervisor, for a VM with a screen
/// and no server in the guest: keys on its keyboard (virDomainSendKey), text read off its screen (the screenshot
/// API, then OCR on the controller's host).
struct DesktopCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desktop", abstract: "Press keys, type, and wait for a text on a VM's screen, through the hypervisor.",
        subcommands: [Key.self, TypeText.self, WaitText.self])

    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key", abstract: "Press keys together on the VM's keyboard: super+Return, ctrl+alt+t, F1.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The VM.") var vm: String
        @Argument(help: "Keys joined by +: modifiers (super, ctrl, alt, shift), then a key (Return, Tab, Escape, a letter, …).")
        var keys: String

        func validate() throws {
            do {
                _ = try KeyChord(parsing: keys)
            } catch {
                throw ValidationError("KEYS: \(error)")
            }
        }

        func run() async throws {
            try await DesktopCommands.perform(.key(try KeyChord(parsing: keys)), on: vm, global: global)
        }
    }

    struct TypeText: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "type", abstract: "Type a text on the VM's keyboard, a key at a time (US layout; \\n is Return).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The VM.") var vm: String
        @Argument(help: "Printable ASCII; \\n and \\t type Return and Tab.") var text: String

        func run() async throws {
            let typed = text.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\t", with: "\t")
            do {
                try Check.typedText(typed)
            } catch {
                throw ValidationError("TEXT: \(error)")
            }
            try await DesktopCommands.perform(.type(typed), on: vm, global: global)
        }
    }

    struct WaitText: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wait-text", abstract: "Wait until OCR reads a text on the VM's screen; exit 1 with what it read if it does not.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The VM.") var vm: String
        @Argument(help: "The text to look for (whitespace does not count; case does).") var text: String
        @Option(help: "Seconds to wait.") var timeout = 30

        func validate() throws {
            guard (0...3600).contains(timeout) else { throw ValidationError("--timeout must be 0 to 3600 seconds") }
            do {
                try Check.screenText(text)
            } catch {
                throw ValidationError("TEXT: \(error)")
            }
        }

        func run() async throws {
            try await DesktopCommands.perform(.waitText(text, withinSeconds: timeout), on: vm, global: global)
        }
    }

    /// Sends the input and prints the controller's line; a text not found exits 1.
    static func perform(_ input: DesktopInput, on vm: String, global: GlobalOptions) async throws {
        let result = try await reportingErrors {
            try await AdminClient.with(paths: global.paths) { try await $0.desktop(input, on: vm) }
        }
        let line = Format.escaped(result.summary) + (result.picture.map { "; screen: \(Format.escaped($0))" } ?? "")
        if result.found == false {
            Terminal.error("ionlab: \(line)")
            throw ExitCode(1)
        }
        Terminal.line(line)
    }
}

/// `ionlab report FLEET -o FILE.html`: one self-contained page per fleet, for people.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a fleet's report: per VM its timeline, verdicts and pictures, in one self-contained HTML page.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The fleet.") var fleet: String
    @Option(name: .shortAndLong, help: "Where to write the page (default: FLEET-report.html here).") var output: String?

    func run() async throws {
        let fleet = fleet
        try await reportingErrors {
            let page = try await AdminClient.with(paths: global.paths) { try await $0.report(of: fleet) }
            let path = output ?? "\(fleet)-report.html"
            guard FileManager.default.createFile(atPath: path, contents: page) else { throw ValidationError("cannot write \(path)") }
            Terminal.line("wrote \(Format.escaped(path)): the report of \(Format.escaped(fleet)), \(Table.bytes(UInt64(page.count)))")
        }
    }
}
