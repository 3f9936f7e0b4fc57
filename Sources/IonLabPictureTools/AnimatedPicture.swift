import Foundation
import IonLabPictures

/// A record of a session as one animated PNG (APNG), assembled by Debian's apngasm from the frames a probe kept,
/// so that a person sees what happened on the screen, in order, in any browser.
public enum AnimatedPicture {
    static let apngasm = HostTool(name: "apngasm", package: "apngasm")

    /// Writes the frames (of one size) to `path` as an APNG that shows each for `delayTenths` of a second and loops.
    public static func write(_ frames: [Picture], to path: String, delayTenths: Int = 5) async throws(ToolError) {
        guard let first = frames.first else { throw ToolError("an animation needs at least one frame") }
        guard frames.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw ToolError("the frames of an animation differ in size")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-apng-\(UUID().uuidString.prefix(12))").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ToolError("cannot make a directory for the animation's frames: \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var names: [String] = []
        for (index, frame) in frames.enumerated() {
            let name = "\(directory)/frame\(String(format: "%03d", index)).png"
            do {
                try Data(try frame.png()).write(to: URL(fileURLWithPath: name))
            } catch {
                throw ToolError("cannot write the animation's frame \(index): \(error)")
            }
            names.append(name)
        }
        // zlib (-z0): 7-Zip's compression is the default and takes seconds a frame on a screen-sized picture.
        let output = try await apngasm.run([path] + names + ["\(delayTenths)", "10", "-z0"], timeout: 120)
        guard output.status == 0, FileManager.default.fileExists(atPath: path) else {
            throw ToolError("apngasm failed (status \(output.status))" + (output.lastError.isEmpty ? "" : ": \(output.lastError)"))
        }
    }
}
