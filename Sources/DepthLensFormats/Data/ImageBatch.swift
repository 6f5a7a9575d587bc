import DepthLensModel

/// A batch of normalised images in NCHW layout, ready for a forward pass.
public struct ImageBatch: Sendable, Equatable {
    public var count: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    /// count x channels x height x width values, row-major.
    public var pixels: [Float]

    public init(count: Int, channels: Int, height: Int, width: Int, pixels: [Float]) {
        precondition(count * channels * height * width == pixels.count, "pixel count does not match the batch shape")
        self.count = count
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
    }

    /// Values per image.
    public var imageSize: Int { channels * height * width }
}
