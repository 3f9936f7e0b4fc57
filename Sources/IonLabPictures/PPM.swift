extension Picture {
    /// The largest side a PPM may announce.
    public static let maximumPPMSide = 16_384

    /// A binary PPM (`P6`, samples of one byte), as QEMU's screendump writes it. Anything else is refused, and
    /// so is a size that the pixels do not fill.
    public init(ppm data: [UInt8]) throws(PictureError) {
        var index = 0
        func skipSpaceAndComments() {
            while index < data.count {
                if data[index] == UInt8(ascii: "#") {
                    while index < data.count, data[index] != UInt8(ascii: "\n") { index += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D].contains(data[index]) {
                    index += 1
                } else {
                    return
                }
            }
        }
        func number(_ what: String) throws(PictureError) -> Int {
            skipSpaceAndComments()
            var value = 0, digits = 0
            while index < data.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[index]), digits < 6 {
                value = value * 10 + Int(data[index] - UInt8(ascii: "0"))
                index += 1
                digits += 1
            }
            guard digits > 0 else { throw PictureError("the screenshot is not a PPM: no \(what)") }
            return value
        }
        guard data.count >= 2, data[0] == UInt8(ascii: "P"), data[1] == UInt8(ascii: "6") else {
            throw PictureError("the screenshot is not a binary PPM (P6)")
        }
        index = 2
        let width = try number("width"), height = try number("height"), maximum = try number("maximum value")
        guard (1...Self.maximumPPMSide).contains(width), (1...Self.maximumPPMSide).contains(height) else {
            throw PictureError("the screenshot is \(width) × \(height), beyond \(Self.maximumPPMSide) a side")
        }
        guard maximum == 255 else { throw PictureError("the screenshot has samples up to \(maximum); only 255 (one byte) is read") }
        guard index < data.count else { throw PictureError("the screenshot has no pixels") }
        index += 1  // the single whitespace byte before the pixels
        let size = width * height * 3
        guard data.count - index >= size else {
            throw PictureError("the screenshot is cut short: \(data.count - index) bytes of pixels for \(width) × \(height)")
        }
        self.init(width: width, height: height, rgb: Array(data[index..<(index + size)]))
    }
}
