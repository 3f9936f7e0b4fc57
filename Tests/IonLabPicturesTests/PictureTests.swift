import Foundation
@testable import IonLabPictures
import Testing

/// Pictures: QEMU's PPM read strictly, PNGs encoded and decoded by libpng and read back by an independent reader
/// (scripts/lib/png_check.py, the standard library's zlib), hostile PNGs refused in one line, comparisons and the
/// OCR engine's copy.
@Suite struct PictureTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let checker = repository.appendingPathComponent("scripts/lib/png_check.py").path

    /// A gradient with a square in it: many colours, nothing blank.
    static func gradient(width: Int, height: Int, square: Bool = true) -> Picture {
        var rgb: [UInt8] = []
        rgb.reserveCapacity(width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let inSquare = square && (width / 4..<width / 2).contains(x) && (height / 4..<height / 2).contains(y)
                rgb += inSquare ? [255, 255, 255] : [UInt8(x % 256), UInt8(y % 256), UInt8((x + y) % 256)]
            }
        }
        return Picture(width: width, height: height, rgb: rgb)
    }

    static func ppm(_ picture: Picture, header: String? = nil) -> [UInt8] {
        Array((header ?? "P6\n# from QEMU\n\(picture.width) \(picture.height)\n255\n").utf8) + picture.rgb
    }

    /// What the independent reader says of PNGs (with two, how much of the first differs from the second).
    static func check(_ pngs: [UInt8]...) throws -> [String: Int] {
        var paths: [String] = []
        for png in pngs {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-png-\(UUID().uuidString.prefix(8)).png").path
            try Data(png).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        defer { for path in paths { try? FileManager.default.removeItem(atPath: path) } }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", checker] + paths
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "png_check refused the PNG")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Int])
    }

    @Test func aPPMBecomesAPNGThatAnotherReaderReadsBackAndLibpngDecodesToTheSamePixels() throws {
        let picture = Self.gradient(width: 320, height: 200)
        let parsed = try Picture(ppm: Self.ppm(picture))
        #expect(parsed == picture)
        let png = try parsed.png()
        #expect(try Picture.pngSize(of: png) == (320, 200))
        let read = try Self.check(png)
        #expect(read["width"] == 320 && read["height"] == 200)
        #expect((read["colors"] ?? 0) > 100)
        #expect((read["variance"] ?? 0) > 100)
        #expect(try Picture(png: png) == picture)
        // A blank screen reads as one colour with no variance, so a "not blank" check means something.
        let blank = try Self.check(try Picture(width: 64, height: 48).png())
        #expect(blank["colors"] == 1 && blank["variance"] == 0)
        // Without its square (80 × 50 of 320 × 200 pixels), the picture differs in 62.5 per mille of them.
        let withoutSquare = try Self.gradient(width: 320, height: 200, square: false).png()
        #expect((62...63).contains(try Self.check(png, withoutSquare)["changed"] ?? 0))
        #expect(try Self.check(png, png)["changed"] == 0)
    }

    /// The README's picture of a real desktop (foot in sway, written by ionlab's encoder in an earlier run).
    @Test func aScreenOfARealDesktopDecodes() throws {
        let bytes = try [UInt8](Data(contentsOf: Self.repository.appendingPathComponent("docs/pictures/remote-desktop-after-input.png")))
        let picture = try Picture(png: bytes)
        #expect(picture.width == 1280 && picture.height == 800)
        #expect(picture.lumaVariance() > 25)
    }

    @Test(arguments: [
        ("P3\n2 2\n255\n", "not a binary PPM (P6)"),
        ("P6\n2 2\n65535\n", "samples up to 65535"),
        ("P6\n0 2\n255\n", "is 0 × 2"),
        ("P6\n99999 2\n255\n", "is 99999 × 2"),
        ("P6\n# only a comment\n", "no width"),
        ("P6\n4 4\n255\n", "cut short: 12 bytes of pixels for 4 × 4"),
    ])
    func badPPMsAreRefusedWithWhatIsWrong(header: String, expected: String) {
        #expect {
            _ = try Picture(ppm: Array(header.utf8) + [UInt8](repeating: 7, count: 12))
        } throws: { "\($0)".contains(expected) }
    }

    /// A PNG chunk: length, type, body, CRC.
    static func chunk(_ kind: String, _ body: [UInt8]) -> [UInt8] {
        let typed = Array(kind.utf8) + body
        return be32(UInt32(body.count)) + typed + be32(crc32(typed))
    }

    static func be32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The attacks a guest can make with a picture: each is refused in one line that says what is wrong, and
    /// none allocates what it announces.
    @Test func hostilePNGsAreRefusedInOneLine() throws {
        let good = try Self.gradient(width: 16, height: 16).png()
        func header(width: UInt32, height: UInt32) -> [UInt8] {
            Self.signature + Self.chunk("IHDR", Self.be32(width) + Self.be32(height) + [8, 2, 0, 0, 0])
        }
        let afterHeader = Array(good[(8 + 25)...])  // the good picture's chunks after its IHDR
        let cases: [(String, [UInt8], String)] = [
            ("not a PNG", Array("GIF89a, not a PNG at all".utf8), "no PNG signature"),
            ("nothing", [], "no PNG signature"),
            ("a signature only", Self.signature, "cut short"),
            ("a size of 100,000 a side", header(width: 100_000, height: 100_000) + afterHeader, "the PNG is 100000 × 100000, beyond 8192 a side"),
            ("8192 × 8192, too many pixels", header(width: 8192, height: 8192) + afterHeader, "more than the 33554432 pixels ionlab reads"),
            ("a zero width", header(width: 0, height: 16) + afterHeader, "the PNG is 0 × 16"),
            ("cut in its pixels", Array(good.prefix(good.count - 30)), "cut short"),
            ("a broken CRC", Array(good.prefix(30)) + [good[30] ^ 0xFF] + Array(good.dropFirst(31)), "CRC error"),
        ]
        for (name, bytes, expected) in cases {
            do {
                _ = try Picture(png: bytes)
                Issue.record("\(name): decoded")
            } catch {
                #expect(error.description.hasPrefix("the PNG "), "\(name): \(error)")
                #expect(error.description.contains(expected), "\(name): \(error)")
                #expect(!error.description.contains("\n"), "\(name): \(error)")
            }
        }
        // A file over the byte limit is refused before libpng sees it.
        let small = PictureLimits(maximumSide: 64, maximumPixels: 4096, maximumBytes: 100)
        #expect(throws: PictureError("the PNG is \(good.count) bytes, over the 100 ionlab reads")) { try Picture(png: good, limits: small) }
        #expect(throws: (any Error).self) { try Picture(png: try Self.gradient(width: 65, height: 2).png(), limits: .init(maximumSide: 64, maximumPixels: 4096, maximumBytes: 1 << 20)) }
    }

    /// Every colour type libpng can be given becomes RGB: grey, palette, alpha, 16 bits.
    @Test func pngsOfOtherColourTypesBecomeRGB() throws {
        // 2 × 1 grey, 8-bit: black and white.
        let grey = Self.signature + Self.chunk("IHDR", Self.be32(2) + Self.be32(1) + [8, 0, 0, 0, 0])
            + Self.chunk("IDAT", Self.zlibStored([0, 0, 255])) + Self.chunk("IEND", [])
        #expect(try Picture(png: grey).rgb == [0, 0, 0, 255, 255, 255])
        // 1 × 1 RGBA, 16-bit: red, half transparent (alpha is dropped, the samples' high bytes kept).
        let rgba16 = Self.signature + Self.chunk("IHDR", Self.be32(1) + Self.be32(1) + [16, 6, 0, 0, 0])
            + Self.chunk("IDAT", Self.zlibStored([0, 0xFF, 0xFF, 0, 0, 0, 0, 0x80, 0])) + Self.chunk("IEND", [])
        #expect(try Picture(png: rgba16).rgb == [255, 0, 0])
    }

    /// A zlib stream of one stored block (no compression), as PNG's IDAT takes it.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        let length = UInt16(data.count)
        return [0x78, 0x01, 0x01, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)] + data + be32(b << 16 | a)
    }

    @Test func twoPicturesOfOneScreenMatchWithinTheTolerance() {
        let screen = Self.gradient(width: 100, height: 100)
        let comparison = PictureComparison()
        #expect(comparison.compare(screen, with: screen).matches)
        // A cursor of 8 × 12 moved: 96 of 10,000 pixels, under 1%.
        var cursor = screen
        for y in 10..<22 { for x in 10..<18 { for c in 0..<3 { cursor.rgb[(y * 100 + x) * 3 + c] = 255 &- cursor.rgb[(y * 100 + x) * 3 + c] } } }
        let moved = comparison.compare(screen, with: cursor)
        #expect(moved.matches)
        #expect(moved.summary == "100×100, 0.96% of the pixels differ by more than 48 (at most 1% may)")
        // A window opened over a tenth of it: no match.
        var window = screen
        for y in 0..<10 { for x in 0..<100 { for c in 0..<3 { window.rgb[(y * 100 + x) * 3 + c] = window.rgb[(y * 100 + x) * 3 + c] &+ 128 } } }
        let opened = comparison.compare(screen, with: window)
        #expect(!opened.matches && opened.differingShare == 0.1)
        // Rounding (a colour converter's ±2) is no difference.
        var rounded = screen
        for i in rounded.rgb.indices { rounded.rgb[i] = rounded.rgb[i] < 253 ? rounded.rgb[i] + 2 : rounded.rgb[i] }
        #expect(comparison.compare(screen, with: rounded).differingShare == 0)
        #expect(comparison.compare(screen, with: Picture(width: 50, height: 100)).summary == "the pictures are 100×100 and 50×100")
    }

    @Test func theReadingCopyIsGreyDarkOnLightAndTwiceTheSize() {
        // White text (one pixel) on a dark screen: inverted, so the text is dark on light.
        var dark = Picture(width: 3, height: 1)
        dark.rgb = [10, 10, 10, 10, 10, 10, 250, 250, 250]
        let copy = dark.readingCopy(scale: 2)
        let header = Array("P5\n6 2\n255\n".utf8)
        #expect(Array(copy.prefix(header.count)) == header)
        #expect(Array(copy.dropFirst(header.count)) == [245, 245, 245, 245, 5, 5, 245, 245, 245, 245, 5, 5])
        // A light screen stays as it is.
        var light = Picture(width: 1, height: 1)
        light.rgb = [200, 200, 200]
        #expect(Array(light.readingCopy(scale: 1).suffix(1)) == [200])
    }
}
