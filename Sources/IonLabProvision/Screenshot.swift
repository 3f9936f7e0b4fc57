import Foundation
import IonLabPictures
import Libvirt

/// A VM's screen as a PNG, taken through libvirt. QEMU hands over a PPM, which libpng turns into a PNG here;
/// a driver that hands over a PNG (the test driver) has it checked and passed on.
public struct Screenshot: Sendable {
    public var png: Data
    public var width: Int
    public var height: Int

    public static func take(of domain: Domain) async throws -> Screenshot {
        let (mimeType, data) = try await domain.screenshot()
        do {
            switch mimeType {
            case "image/png":
                let (width, height) = try Picture.pngSize(of: [UInt8](data))
                return Screenshot(png: data, width: width, height: height)
            case "image/x-portable-pixmap":
                let picture = try Picture(ppm: [UInt8](data))
                return Screenshot(png: Data(try picture.png()), width: picture.width, height: picture.height)
            default:
                throw ScreenshotError("the hypervisor sent the screen as \(mimeType.prefix(64)), which ionlab cannot read")
            }
        } catch let error as PictureError {
            throw ScreenshotError(error.description)
        }
    }

    /// The screen as a picture, for comparing and reading: the hypervisor's PPM as it came, or its PNG decoded.
    public static func picture(of domain: Domain) async throws -> Picture {
        let (mimeType, data) = try await domain.screenshot()
        do {
            switch mimeType {
            case "image/png": return try Picture(png: [UInt8](data))
            case "image/x-portable-pixmap": return try Picture(ppm: [UInt8](data))
            default: throw ScreenshotError("the hypervisor sent the screen as \(mimeType.prefix(64)), which ionlab cannot read")
            }
        } catch let error as PictureError {
            throw ScreenshotError("the hypervisor's screen: \(error.description)")
        }
    }
}

public struct ScreenshotError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
