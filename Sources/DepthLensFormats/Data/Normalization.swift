import DepthLensModel

/// Per-channel input normalisation applied to 8-bit pixels: x = (byte / 255 - mean) / std.
public struct InputNormalization: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// No change beyond scaling bytes to [0, 1].
    public static func identity(channels: Int) -> InputNormalization {
        InputNormalization(mean: .init(repeating: 0, count: channels), std: .init(repeating: 1, count: channels))
    }

    /// Checks the channel count and that every std is positive.
    public func validate(channels: Int) throws {
        guard mean.count == channels, std.count == channels else {
            throw DataSetError(source: "normalisation",
                               message: "mean has \(mean.count) and std \(std.count) values, but the images have \(channels) channel(s)")
        }
        if let bad = std.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
            throw DataSetError(source: "normalisation", message: "std of channel \(bad) is \(std[bad]); it must be positive")
        }
    }

    /// Normalises CHW-ordered bytes of whole images.
    func apply(_ bytes: [UInt8], planeSize: Int) -> [Float] {
        let channels = mean.count
        var out = [Float](repeating: 0, count: bytes.count)
        for i in 0..<bytes.count {
            let c = (i / planeSize) % channels
            out[i] = (Float(bytes[i]) / 255 - mean[c]) / std[c]
        }
        return out
    }
}
