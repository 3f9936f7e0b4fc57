import Foundation
import IonLabPictures
@testable import IonLabPictureTools
import Testing

/// The host's picture tools for real: tesseract reads a real desktop's terminal, apngasm animates frames, and a
/// tool that is missing, slow or talkative is bounded and named.
@Suite struct PictureToolsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func picture(_ name: String) throws -> Picture {
        try Picture(png: [UInt8](Data(contentsOf: repository.appendingPathComponent("docs/pictures/\(name).png"))))
    }

    /// The README's picture: foot in sway after the remote-desktop probe typed `echo ionlab-25a84d1b`.
    @Test func tesseractReadsTheMarkerATerminalShows() async throws {
        let read = try await ScreenTextReader().read(try Self.picture("remote-desktop-after-input"))
        #expect(read.contains("echo ionlab-25a84d1b"), "read: \(read.oneLine)")
        #expect(read.contains("Super+Return opens a terminal"), "read: \(read.oneLine)")
        #expect(!read.contains("ionlab-25a84d1c"))
        // The first frame, before the terminal opened, has no marker.
        let before = try await ScreenTextReader().read(try Self.picture("remote-desktop-first"))
        #expect(!before.contains("ionlab-25a84d1b"), "read: \(before.oneLine)")
    }

    @Test func textIsFoundWhereverTheLinesBreakAndOnlyExactly() {
        let screen = ScreenText(text: "desktop@d1:~$ echo MARK -7KX3W9\nMARK-7KX3W9\n\n  desktop@d1:~$ |", seconds: 1)
        #expect(screen.contains("MARK-7KX3W9"))
        #expect(screen.contains("echo  MARK-7KX3W9"))
        #expect(screen.contains("7KX3W9 desktop@d1"))
        #expect(!screen.contains("mark-7kx3w9"))
        #expect(!screen.contains("MARK-7KX3W8"))
        #expect(!screen.contains(" \n "))
        #expect(screen.oneLine == "desktop@d1:~$ echo MARK -7KX3W9 MARK-7KX3W9 desktop@d1:~$ |")
    }

    /// A random marker counts as read with one letter misread, added or dropped, and says where; two, or a
    /// marker typed earlier that is also on the screen, do not count.
    @Test func aMarkerIsReadWithAtMostTheMisreadsTolerated() {
        let screen = ScreenText(text: "desktop@d2:~$ echo ionlab-kpuwhy\nionlab-kpuwhy\ndesktop@d2:~$ echo ionlab-axa cde\nionlab-axacde\n", seconds: 1)
        #expect(screen.reading(of: "ionlab-kpuwhy", toleratingEdits: 1) == "ionlab-kpuwhy")
        #expect(screen.reading(of: "ionlab-axacdc", toleratingEdits: 1) == "ionlab-axacde")  // c read as e
        #expect(screen.reading(of: "ionlab-axacdc", toleratingEdits: 0) == nil)
        #expect(ScreenText(text: "echo ionlab-aryt8Tf", seconds: 1).reading(of: "ionlab-aryt8f", toleratingEdits: 1) == "ionlab-aryt8T")  // f read as T
        #expect(ScreenText(text: "echo ionlab-ayt8f", seconds: 1).reading(of: "ionlab-aryt8f", toleratingEdits: 1) == "ionlab-ayt8f")  // one dropped
        #expect(screen.reading(of: "ionlab-axaddd", toleratingEdits: 1) == nil)  // two off
        #expect(screen.reading(of: "ionlab-mmnnwx", toleratingEdits: 1) == nil)  // another marker's prefix only
        #expect(ScreenText(text: "", seconds: 0).reading(of: "ionlab-kpuwhy", toleratingEdits: 1) == nil)
        #expect(ScreenText(text: "echo ionlab-kpuxwhy", seconds: 1).reading(of: "ionlab-kpuwhy", toleratingEdits: 1) == "ionlab-kpuxwhy")  // one added
        #expect(screen.reading(of: "z", toleratingEdits: 1) == nil)  // as many misreads as letters: only an exact read
    }

    @Test func aMissingToolIsNamedWithItsPackage() async {
        let missing = HostTool(name: "ionlab-no-such-tool", package: "ionlab-no-such-package")
        await #expect(throws: ToolError("ionlab-no-such-tool is not installed on the controller's host (Debian: apt install ionlab-no-such-package)")) {
            _ = try await missing.run([], timeout: 5)
        }
    }

    @Test func aSlowToolIsStoppedAndATalkativeOneBounded() async throws {
        await #expect(throws: ToolError("sleep took longer than 1 s and was stopped")) {
            _ = try await HostTool(name: "sleep", package: "coreutils").run(["30"], timeout: 1)
        }
        let talkative = try await HostTool(name: "head", package: "coreutils").run(["-c", "1000000", "/dev/zero"], timeout: 30, limit: 100)
        #expect(talkative.status == 0 && talkative.stdout.count == 100)
        // Its input arrives whole, however large: cat echoes 4 MiB back (bounded to the first 1 MiB).
        let echoed = try await HostTool(name: "cat", package: "coreutils").run([], input: [UInt8](repeating: 7, count: 4 << 20), timeout: 30)
        #expect(echoed.stdout.count == 1 << 20 && echoed.stdout.allSatisfy { $0 == 7 })
    }

    /// The chunks of a PNG file by type, in order.
    static func chunkTypes(_ bytes: [UInt8]) -> [String] {
        var types: [String] = []
        var offset = 8
        while offset + 8 <= bytes.count {
            let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            types.append(String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self))
            offset += 12 + length
        }
        return types
    }

    @Test func framesBecomeAnAnimatedPNG() async throws {
        let first = try Self.picture("remote-desktop-first"), after = try Self.picture("remote-desktop-after-input")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-apng-\(UUID().uuidString.prefix(8)).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await AnimatedPicture.write([first, after, first], to: path)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let types = Self.chunkTypes(bytes)
        #expect(types.first == "IHDR" && types.last == "IEND")
        #expect(types.filter { $0 == "acTL" }.count == 1)
        #expect(types.filter { $0 == "fcTL" }.count == 3)
        // Its first frame is an ordinary PNG: a viewer without APNG shows the first picture.
        #expect(try Picture(png: bytes) == first)
        await #expect(throws: ToolError("the frames of an animation differ in size")) {
            try await AnimatedPicture.write([first, Picture(width: 2, height: 2)], to: path)
        }
    }
}
