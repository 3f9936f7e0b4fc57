import Foundation
@testable import IonLabProvision
import Libvirt
import Testing

/// Screenshots: QEMU's PPM read strictly, encoded by libpng, and the PNG read back by an independent reader
/// (scripts/lib/png_check.py, the standard library's zlib); the test driver's own PNG passed through.
@Suite struct ScreenshotTests {
    static let checker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/lib/png_check.py").path

    /// A gradient with a square in it: many colours, nothing blank.
    static func picture(width: Int, height: Int, square: Bool = true) -> PPMImage {
        var rgb = Data(capacity: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let inSquare = square && (width / 4..<width / 2).contains(x) && (height / 4..<height / 2).contains(y)
                rgb.append(contentsOf: inSquare ? [255, 255, 255] : [UInt8(x % 256), UInt8(y % 256), UInt8((x + y) % 256)])
            }
        }
        return PPMImage(width: width, height: height, rgb: rgb)
    }

    static func ppm(_ image: PPMImage, header: String? = nil) -> Data {
        Data((header ?? "P6\n# from QEMU\n\(image.width) \(image.height)\n255\n").utf8) + image.rgb
    }

    /// What the independent reader says of a PNG (and with `other`, how much of it differs from that one).
    static func check(_ png: Data, against other: Data? = nil) throws -> [String: Int] {
        var paths: [String] = []
        for data in [png] + (other.map { [$0] } ?? []) {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-png-\(UUID().uuidString.prefix(8)).png").path
            try data.write(to: URL(fileURLWithPath: path))
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

    @Test func aPPMBecomesAPNGThatAnotherReaderReadsBack() throws {
        let image = Self.picture(width: 320, height: 200)
        let parsed = try PPMImage(parsing: Self.ppm(image))
        #expect(parsed == image)
        let png = try PNGEncoder.encode(parsed)
        #expect(try PNGHeader.size(of: png) == (320, 200))
        let read = try Self.check(png)
        #expect(read["width"] == 320 && read["height"] == 200)
        #expect((read["colors"] ?? 0) > 100)
        #expect((read["variance"] ?? 0) > 100)
        // A blank screen reads as one colour with no variance, so the e2e test's "not blank" means something.
        let blank = PPMImage(width: 64, height: 48, rgb: Data(repeating: 0, count: 64 * 48 * 3))
        let readBlank = try Self.check(try PNGEncoder.encode(blank))
        #expect(readBlank["colors"] == 1 && readBlank["variance"] == 0)
        // Without its square (80 × 50 of 320 × 200 pixels), the picture differs in 62.5 per mille of them.
        let withoutSquare = try PNGEncoder.encode(Self.picture(width: 320, height: 200, square: false))
        #expect((62...63).contains(try Self.check(png, against: withoutSquare)["changed"] ?? 0))
        #expect(try Self.check(png, against: png)["changed"] == 0)
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
        let pixels = Data(repeating: 7, count: 12)
        #expect {
            _ = try PPMImage(parsing: Data(header.utf8) + pixels)
        } throws: { "\($0)".contains(expected) }
    }

    /// On a test driver of its own (a node file): `test:///default` is shared by the process, and other suites
    /// probe it meanwhile.
    @Test func theTestDriversScreenIsAPNGOfItsSize() async throws {
        let node = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-screen-\(UUID().uuidString.prefix(8)).xml").path
        try """
            <node>
              <domain type='test'><name>screen</name><memory>65536</memory><os><type>hvm</type></os></domain>
            </node>
            """.write(toFile: node, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: node) }
        let connection = try await Connection.open("test://\(node)")
        let screenshot = try await Screenshot.take(of: try await connection.domain(named: "screen"))
        #expect(screenshot.width > 0 && screenshot.height > 0)
        let read = try Self.check(screenshot.png)
        #expect(read["width"] == screenshot.width && read["height"] == screenshot.height)
    }
}
