extension Picture {
    /// The picture as an OCR engine reads small screen text best: grey, dark text on a light ground (a dark
    /// screen is inverted, unless `inverted` says which), each pixel made `scale` × `scale`, as a binary PGM
    /// (`P5`). Tesseract misreads a terminal's 10-point font at its own size (`ionlab` as `tontab`) and reads it
    /// exactly at twice the size; light text on a dark bar of an otherwise light screen it reads only inverted.
    public func readingCopy(scale: Int = 2, inverted: Bool? = nil) -> [UInt8] {
        precondition((1...4).contains(scale))
        let count = width * height
        var grey = [UInt8](repeating: 0, count: count)
        var sum = 0
        for pixel in 0..<count {
            let value = luma(pixel)
            grey[pixel] = UInt8(value)
            sum += value
        }
        let invert = inverted ?? (count > 0 && sum / count < 128)
        let header = Array("P5\n\(width * scale) \(height * scale)\n255\n".utf8)
        var out = [UInt8]()
        out.reserveCapacity(header.count + count * scale * scale)
        out += header
        var row = [UInt8](repeating: 0, count: width * scale)
        for y in 0..<height {
            for x in 0..<width {
                let value = invert ? 255 - grey[y * width + x] : grey[y * width + x]
                for copy in 0..<scale { row[x * scale + copy] = value }
            }
            for _ in 0..<scale { out += row }
        }
        return out
    }
}

extension Picture {
    /// Whether ``readingCopy(scale:inverted:)`` inverts this picture when not told.
    public var readsInverted: Bool {
        let count = width * height
        guard count > 0 else { return false }
        var sum = 0
        for pixel in 0..<count { sum += luma(pixel) }
        return sum / count < 128
    }
}
