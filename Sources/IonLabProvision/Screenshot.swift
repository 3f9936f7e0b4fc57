import CIonLabPNG
import Foundation
import Libvirt

/// A VM's screen as a PNG, taken through libvirt. QEMU hands over a PPM, which libpng turns into a PNG here;
/// a driver that hands over a PNG (the test driver) has it checked and passed on.
public struct Screenshot: Sendable {
    public var png: Data
    public var width: Int
    public var height: Int

    public static func take(of domain: Domain) async throws -> Screenshot {
        let (mimeType, data) = try await domain.screenshot()
        switch mimeType {
        case "image/png":
            let (width, height) = try PNGHeader.size(of: data)
            return Screenshot(png: data, width: width, height: height)
        case "image/x-portable-pixmap":
            let image = try PPMImage(parsing: data)
            return Screenshot(png: try PNGEncoder.encode(image), width: image.width, height: image.height)
        default:
            throw ScreenshotError("the hypervisor sent the screen as \(mimeType.prefix(64)), which ionlab cannot read")
        }
    }
}

public struct ScreenshotError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A binary PPM (`P6`, samples of one byte), as QEMU's screendump writes it. Anything else is refused, and
/// so is a size that the pixels do not fill.
public struct PPMImage: Sendable, Equatable {
    public static let maximumSide = 16_384
    public var width: Int
    public var height: Int
    /// Rows of `width` RGB triples, top first.
    public var rgb: Data

    public init(width: Int, height: Int, rgb: Data) {
        self.width = width
        self.height = height
        self.rgb = rgb
    }

    public init(parsing data: Data) throws {
        var index = data.startIndex
        func skipSpaceAndComments() {
            while index < data.endIndex {
                if data[index] == UInt8(ascii: "#") {
                    while index < data.endIndex, data[index] != UInt8(ascii: "\n") { index += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D].contains(data[index]) {
                    index += 1
                } else {
                    return
                }
            }
        }
        func number(_ what: String) throws -> Int {
            skipSpaceAndComments()
            var value = 0, digits = 0
            while index < data.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[index]), digits < 6 {
                value = value * 10 + Int(data[index] - UInt8(ascii: "0"))
                index += 1
                digits += 1
            }
            guard digits > 0 else { throw ScreenshotError("the screenshot is not a PPM: no \(what)") }
            return value
        }
        guard data.count >= 2, data[index] == UInt8(ascii: "P"), data[index + 1] == UInt8(ascii: "6") else {
            throw ScreenshotError("the screenshot is not a binary PPM (P6)")
        }
        index += 2
        let width = try number("width"), height = try number("height"), maximum = try number("maximum value")
        guard (1...Self.maximumSide).contains(width), (1...Self.maximumSide).contains(height) else {
            throw ScreenshotError("the screenshot is \(width) × \(height), beyond \(Self.maximumSide) a side")
        }
        guard maximum == 255 else { throw ScreenshotError("the screenshot has samples up to \(maximum); only 255 (one byte) is read") }
        guard index < data.endIndex else { throw ScreenshotError("the screenshot has no pixels") }
        index += 1  // the single whitespace byte before the pixels
        let size = width * height * 3
        guard data.endIndex - index >= size else {
            throw ScreenshotError("the screenshot is cut short: \(data.endIndex - index) bytes of pixels for \(width) × \(height)")
        }
        self.init(width: width, height: height, rgb: Data(data[index..<(index + size)]))
    }
}

/// PNG encoding with libpng.
public enum PNGEncoder {
    public static func encode(_ image: PPMImage) throws -> Data {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = image.rgb.withUnsafeBytes { pixels in
            ionlab_png_encode_rgb(pixels.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(image.width), UInt32(image.height),
                                  &output, &length, &error, error.count)
        }
        guard status == 0, let output else {
            throw ScreenshotError("libpng could not encode the screenshot: \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { free(output) }
        return Data(bytes: output, count: length)
    }
}

/// The size a PNG says it has, after its signature is checked.
public enum PNGHeader {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    public static func size(of data: Data) throws -> (width: Int, height: Int) {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, Array(bytes[0..<8]) == signature, Array(bytes[12..<16]) == Array("IHDR".utf8) else {
            throw ScreenshotError("the screenshot is not a PNG")
        }
        func big(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (big(16), big(20))
    }
}
