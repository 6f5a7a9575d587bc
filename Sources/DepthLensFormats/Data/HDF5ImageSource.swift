import DepthLensModel
import Foundation

/// Images from an HDF5 dataset of shape (N, C, H, W) or (N, H, W), with optional integer
/// labels of shape (N). Float images are the network's input exactly as stored (already
/// normalised, as a framework's test loader yields them), unless a normalisation is given
/// for them explicitly (`floatNormalization`: (x - mean) / std, as torchvision's
/// `Normalize` does to a float tensor); integer images are 8-bit pixels, scaled to [0, 1]
/// and normalised like IDX and CIFAR files.
public struct HDF5ImageSource: ImageSource {
    public let path: String
    public let count: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    private let images: HDF5Dataset
    private let labelData: HDF5Dataset?
    /// Applied to integer images only.
    public let normalization: InputNormalization?
    /// Applied to float images only: given explicitly, never the checkpoint's default.
    public let floatNormalization: InputNormalization?

    public var name: String { "\(path): \(images.path)" }

    /// Opens `imagesDataset` (and `labelsDataset`, when the file has it) in `path`.
    /// - Parameters:
    ///   - normalization: for integer (8-bit) images, after scaling by 1/255; nil: none.
    ///   - floatNormalization: for float images, (x - mean) / std on the stored values;
    ///     nil: the stored values are the input. Give it only when a user asked for it: a
    ///     checkpoint's recorded normalisation describes 8-bit pixels, and float images
    ///     are normally stored already normalised.
    /// - Throws: ``HDF5Error`` or ``DataSetError`` naming the file and dataset.
    public init(path: String, imagesDataset: String = "images", labelsDataset: String? = "labels",
                normalization: InputNormalization? = nil, floatNormalization: InputNormalization? = nil) throws {
        self.path = path
        let root = try HDF5File.open(path).root
        let images = try root.dataset(atPath: imagesDataset)
        self.images = images
        let shape = images.shape
        let fail = { (message: String) in DataSetError(source: "\(path): \(images.path)", message: message) }
        guard images.elementType.isNumeric else { throw fail("has \(images.elementType) elements; expected numbers") }
        switch shape.count {
        case 4, 3: break
        default: throw fail("has shape \(shape); expected (N, C, H, W) or (N, H, W)")
        }
        let dims = shape.count == 4 ? shape : [shape[0], 1, shape[1], shape[2]]
        guard dims[1] > 0, dims[2] > 0, dims[3] > 0 else { throw fail("has an empty image shape \(shape)") }
        try images.checkDeclaredSizeFitsFile()
        (count, channels, height, width) = (dims[0], dims[1], dims[2], dims[3])
        switch images.elementType {
        case .signedInteger, .unsignedInteger:
            let norm = normalization ?? .identity(channels: dims[1])
            try norm.validate(channels: dims[1])
            self.normalization = norm
            self.floatNormalization = nil
        default:
            self.normalization = nil
            if let floatNormalization {
                do {
                    try floatNormalization.validate(channels: dims[1])
                } catch let error as DataSetError {
                    throw fail("holds float images, to which the given normalisation applies: \(error.message)")
                }
            }
            self.floatNormalization = floatNormalization
        }
        if let labelsDataset, root.contains(path: labelsDataset) {
            let labels = try root.dataset(atPath: labelsDataset)
            guard labels.shape == [count] else {
                throw DataSetError(source: "\(path): \(labels.path)",
                                   message: "has shape \(labels.shape) but there are \(count) images; expected (\(count))")
            }
            try labels.checkDeclaredSizeFitsFile()
            labelData = labels
        } else {
            labelData = nil
        }
    }

    public func pixels(_ range: Range<Int>) throws -> [Float] {
        var values = try images.readFloats(rows: range)
        if normalization != nil, let bad = values.firstIndex(where: { !(0...255).contains($0) }) {
            // Integer images are scaled by 1/255: right for 8-bit pixels only. Wider types
            // (16-bit scans, int64 from numpy) are read when they hold 8-bit values.
            let perImage = channels * height * width
            throw DataSetError(source: name, message: "image \(range.lowerBound + bad / perImage) holds the integer \(Int64(exactly: values[bad].rounded()).map(String.init) ?? "\(values[bad])"), outside 0...255: integer images are read as 8-bit pixels (scaled by 1/255 before the normalisation); store other images as floats, already scaled")
        }
        if let normalization {
            let plane = height * width
            for i in 0..<values.count {
                let c = (i / plane) % channels
                values[i] = (values[i] / 255 - normalization.mean[c]) / normalization.std[c]
            }
        } else if let floatNormalization {
            let plane = height * width
            for i in 0..<values.count {
                let c = (i / plane) % channels
                let stored = values[i]
                values[i] = (stored - floatNormalization.mean[c]) / floatNormalization.std[c]
                if stored.isFinite, !values[i].isFinite {
                    throw DataSetError(source: name, message: "image \(range.lowerBound + i / (channels * plane)): normalising the stored value \(stored) with mean \(floatNormalization.mean[c]) and std \(floatNormalization.std[c]) gives \(values[i]); give a larger std")
                }
            }
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            let perImage = channels * height * width
            throw DataSetError(source: name, message: "image \(range.lowerBound + bad / perImage) contains \(values[bad])")
        }
        return values
    }

    public func labels(_ range: Range<Int>) throws -> [Int]? {
        guard let labelData else { return nil }
        let values = try labelData.readDoubles(rows: range)
        return try values.enumerated().map { (i: Int, value: Double) throws -> Int in
            // Int(value) traps on NaN, infinities and values beyond Int's range.
            guard value.isFinite, value == value.rounded(), Swift.abs(value) < 2_147_483_648.0 else {
                throw DataSetError(source: "\(path): \(labelData.path)",
                                   message: "label of image \(range.lowerBound + i) is \(value); labels must be whole numbers (class indices)")
            }
            return Int(value)
        }
    }
}
