import CIonLabPNG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a PNG may hold before ionlab reads it: every picture that reaches the controller comes from a guest
/// or a hypervisor, so its size is bounded before a row is allocated.
public struct PictureLimits: Sendable, Equatable {
    public var maximumSide: Int
    public var maximumPixels: Int
    public var maximumBytes: Int

    public init(maximumSide: Int, maximumPixels: Int, maximumBytes: Int) {
        self.maximumSide = maximumSide
        self.maximumPixels = maximumPixels
        self.maximumBytes = maximumBytes
    }

    /// A screen up to 8K wide: 8192 a side, 33.5 million pixels (100 MiB as RGB), a 64 MiB file.
    public static let screen = PictureLimits(maximumSide: 8192, maximumPixels: 8192 * 4096, maximumBytes: 64 << 20)
}

extension Picture {
    /// Decodes a PNG of any colour type, depth or interlacing with libpng, within `limits`.
    public init(png bytes: [UInt8], limits: PictureLimits = .screen) throws(PictureError) {
        guard bytes.count <= limits.maximumBytes else {
            throw PictureError("the PNG is \(bytes.count) bytes, over the \(limits.maximumBytes) ionlab reads")
        }
        // The size it announces, refused in ionlab's words before libpng allocates anything for it.
        if let (width, height) = try? Self.pngSize(of: bytes) {
            guard (1...limits.maximumSide).contains(width), (1...limits.maximumSide).contains(height) else {
                throw PictureError("the PNG is \(width) × \(height), beyond \(limits.maximumSide) a side")
            }
            guard width * height <= limits.maximumPixels else {
                throw PictureError("the PNG is \(width) × \(height), more than the \(limits.maximumPixels) pixels ionlab reads")
            }
        }
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: UInt32 = 0, height: UInt32 = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { buffer in
            ionlab_png_decode_rgb(buffer.baseAddress, buffer.count, UInt32(limits.maximumSide), UInt64(limits.maximumPixels),
                                  &pixels, &width, &height, &error, error.count)
        }
        guard status == 0, let pixels else {
            throw PictureError("the PNG does not read: " + Self.message(error))
        }
        defer { free(pixels) }
        self.init(width: Int(width), height: Int(height), rgb: Array(UnsafeBufferPointer(start: pixels, count: Int(width) * Int(height) * 3)))
    }

    /// The picture as a PNG, encoded by libpng.
    public func png() throws(PictureError) -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = rgb.withUnsafeBufferPointer { pixels in
            ionlab_png_encode_rgb(pixels.baseAddress, UInt32(width), UInt32(height), &output, &length, &error, error.count)
        }
        guard status == 0, let output else { throw PictureError("libpng could not encode the picture: " + Self.message(error)) }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// The size a PNG says it has, after its signature is checked, without decoding it.
    public static func pngSize(of bytes: [UInt8]) throws(PictureError) -> (width: Int, height: Int) {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 24, Array(bytes[0..<8]) == signature, Array(bytes[12..<16]) == Array("IHDR".utf8) else {
            throw PictureError("not a PNG")
        }
        func big(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (big(16), big(20))
    }

    private static func message(_ error: [CChar]) -> String {
        String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
