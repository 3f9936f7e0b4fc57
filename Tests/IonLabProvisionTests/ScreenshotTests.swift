import Foundation
@testable import IonLabProvision
import IonLabPictures
import Libvirt
import Testing

/// Screenshots through libvirt: the test driver's own PNG passed through with its size, and read as a picture.
/// (QEMU's PPM and the PNG codec are IonLabPicturesTests'.)
@Suite struct ScreenshotTests {
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
        let picture = try await Screenshot.picture(of: try await connection.domain(named: "screen"))
        #expect(picture.width == screenshot.width && picture.height == screenshot.height)
        #expect(picture.lumaVariance() > 0)
    }
}
