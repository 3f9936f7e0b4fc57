/// A picture of a screen: 8-bit RGB rows, top first. What a hypervisor's screenshot, a VNC framebuffer and a
/// portal's PipeWire frame all become, so that they can be compared, read and saved the same way.
public struct Picture: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height` RGB triples.
    public internal(set) var rgb: [UInt8]

    /// A black picture.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, rgb: [UInt8](repeating: 0, count: width * height * 3))
    }

    public init(width: Int, height: Int, rgb: [UInt8]) {
        precondition(width >= 0 && height >= 0 && rgb.count == width * height * 3, "a picture's pixels fill its size")
        self.width = width
        self.height = height
        self.rgb = rgb
    }

    /// Writes a rectangle of 32-bit pixels whose bytes come as blue, green, red, unused (RFB's format, and
    /// PipeWire's BGRx). The rectangle lies inside the picture: the caller checks what a peer sent.
    public mutating func paste(x: Int, y: Int, width rectWidth: Int, height rectHeight: Int, bgrx: UnsafeBufferPointer<UInt8>) {
        precondition(x >= 0 && y >= 0 && x + rectWidth <= width && y + rectHeight <= height && bgrx.count >= rectWidth * rectHeight * 4)
        for row in 0..<rectHeight {
            var target = ((y + row) * width + x) * 3
            var source = row * rectWidth * 4
            for _ in 0..<rectWidth {
                rgb[target] = bgrx[source + 2]
                rgb[target + 1] = bgrx[source + 1]
                rgb[target + 2] = bgrx[source]
                target += 3
                source += 4
            }
        }
    }

    /// BT.601 luma of pixel `index`, 0 to 255.
    @inline(__always) func luma(_ index: Int) -> Int {
        (299 * Int(rgb[index * 3]) + 587 * Int(rgb[index * 3 + 1]) + 114 * Int(rgb[index * 3 + 2])) / 1000
    }

    /// How many pixels differ from `other` (of the same size) in at least one channel; all of them when the
    /// sizes differ.
    public func changedPixels(since other: Picture) -> Int {
        guard other.width == width, other.height == height else { return width * height }
        var changed = 0
        for pixel in 0..<(width * height) where rgb[pixel * 3] != other.rgb[pixel * 3] || rgb[pixel * 3 + 1] != other.rgb[pixel * 3 + 1]
            || rgb[pixel * 3 + 2] != other.rgb[pixel * 3 + 2] {
            changed += 1
        }
        return changed
    }

    /// The variance of the pixels' brightness (BT.601 luma, 0 to 255). It says whether anything is drawn, where a
    /// count of colours does not: a screen of one colour has 0, and a lone cursor or stuck pixel adds only a few
    /// units, while a bar with text or a window adds tens to thousands.
    public func lumaVariance() -> Double {
        let count = width * height
        guard count > 0 else { return 0 }
        var sum = 0.0, squares = 0.0
        for pixel in 0..<count {
            let luma = (299 * Double(rgb[pixel * 3]) + 587 * Double(rgb[pixel * 3 + 1]) + 114 * Double(rgb[pixel * 3 + 2])) / 1000
            sum += luma
            squares += luma * luma
        }
        let mean = sum / Double(count)
        return max(0, squares / Double(count) - mean * mean)
    }
}

public struct PictureError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
