import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabCommandLine

/// `ionlab screenshot VM [-o FILE.png]`: the VM's screen, taken through the libvirt API, as a PNG.
struct ScreenshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "screenshot", abstract: "Save a VM's screen as a PNG, taken through libvirt (no agent needed).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Option(name: .shortAndLong, help: "Where to write the PNG (default: VM-TIME.png here).") var output: String?

    func run() async throws {
        let vm = vm
        try await reportingErrors {
            let (header, png) = try await AdminClient.with(paths: global.paths) { try await $0.screenshot(of: vm) }
            let path = output ?? "\(vm)-\(Format.fileStamp()).png"
            guard FileManager.default.createFile(atPath: path, contents: png) else { throw ValidationError("cannot write \(path)") }
            Terminal.line("wrote \(path): \(header.width) × \(header.height), \(Table.bytes(UInt64(png.count)))")
        }
    }
}

/// `ionlab display VM`: how to connect a viewer to the VM's graphical console.
struct DisplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "display", abstract: "Say how to connect a VNC viewer to a VM's graphical console (a local UNIX socket, with a password).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The VM.") var vm: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let vm = vm
        try await reportingErrors {
            let info = try await AdminClient.with(paths: global.paths) { try await $0.display(of: vm) }
            if json {
                Terminal.line(JSONOutput.line(info))
                return
            }
            Terminal.line(Self.render(info, vm: vm))
        }
    }

    static func render(_ info: DisplayInfo, vm: String) -> String {
        let socket = info.socket ?? "?"
        let local = info.uri.hasSuffix(":///system") || info.uri.hasSuffix(":///session")
        var lines = [
            "\(info.type.uppercased()) console of \(vm) on backend \(info.backend) (\(info.uri)):",
            "  socket    \(socket)\(local ? "" : " (on that host)")",
            "  password  \(info.password ?? "none")",
            "",
            "Connect a viewer to the socket, for example:",
            "  vncviewer \(socket)                      (TigerVNC takes a socket path)",
            "  virt-viewer --connect \(info.uri) \(vm)",
        ]
        if !local {
            lines.append("  ssh -L 5900:\(socket) HOST, then a viewer on 127.0.0.1:5900 (OpenSSH forwards to a UNIX socket)")
        }
        lines.append("It listens on that socket only, never on a network address; `ionlab screenshot \(vm)` needs no viewer.")
        return lines.joined(separator: "\n")
    }
}
