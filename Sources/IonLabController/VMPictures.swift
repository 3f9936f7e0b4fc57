import Foundation
import IonLabAdminAPI
import IonLabPictureTools
import IonLabPictures

/// Where a VM's pictures are kept: `STATE/pictures/VM/STAMP-NAME.png`, each written by ionlab's own encoder from
/// a decoded picture, never a guest's bytes as they came. Recorded as the VM's `picture.NAME` facts.
struct VMPictures {
    let directory: String
    /// One probe's pictures share a stamp, so they sort together.
    let stamp = Format.fileStamp()

    init(root: String, vm: String) {
        directory = "\(root)/\(vm)"
    }

    func save(_ picture: Picture, as name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/\(stamp)-\(name).png"
        try Data(try picture.png()).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The frames as one animated PNG (``AnimatedPicture``); frames of another size than the first are left out.
    func animate(_ frames: [Picture], as name: String) async throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/\(stamp)-\(name).png"
        guard let first = frames.first else { throw ToolError("no frames to animate") }
        try await AnimatedPicture.write(frames.filter { $0.width == first.width && $0.height == first.height }, to: path)
        return path
    }
}

/// Reads a VM's pictures back for the report and the dashboard: only a name ``PictureFacts`` knows, only a file
/// under `STATE/pictures` (a fact is a path, and facts live in the store), only a PNG within `limit`.
struct VMPictureFiles {
    static let pictureBytes = 32 << 20
    let root: String

    func read(_ name: String, facts: [String: String], limit: Int) -> [UInt8]? {
        guard PictureFacts.all.contains(name), let path = facts[PictureFacts.prefix + name] else { return nil }
        let inside = URL(fileURLWithPath: root).standardizedFileURL.resolvingSymlinksInPath().path + "/"
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        guard resolved.hasPrefix(inside), let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
              (attributes[.size] as? Int ?? .max) <= limit, let data = FileManager.default.contents(atPath: resolved),
              data.count <= limit, (try? Picture.pngSize(of: [UInt8](data.prefix(24)))) != nil else { return nil }
        return [UInt8](data)
    }
}

/// A marker to type and read back: `ionlab-` and six lower-case letters that OCR does not confuse with others
/// in foot's font. No digits: tesseract read 5 as S, 7 as 7J, 3 as j and 8 as B or é there. No f or t (8f
/// became 8T and 8Tf), no c (read as e twice), none of o, i, l, j, s, z, g, q, b, and no r or v (rn reads as m,
/// vv as w). 12⁶ markers still leave no chance of reading one that was not typed.
enum TypedMarker {
    static let alphabet = Array("adehkmnpuwxy")
    /// Letters of a marker OCR may misread and still count it read: one (it read `axacdc` as `axacde` on a
    /// real VM). A marker typed before, also on the screen, is six random letters away, not one.
    static let toleratedMisreads = 1

    /// How a verdict says where the marker was read: as typed, or with the letter OCR got wrong.
    static func described(_ marker: String, readAs seen: String) -> String {
        seen == marker ? "'\(marker)'" : "'\(marker)' as '\(Format.oneLine(seen, limit: 40))', one letter misread"
    }

    static func make() -> String {
        "ionlab-" + String((0..<6).map { _ in alphabet.randomElement()! })
    }
}
