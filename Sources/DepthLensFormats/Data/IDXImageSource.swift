import DepthLensModel

/// Images and labels from a pair of IDX files, gzipped or not (MNIST, Fashion-MNIST,
/// KMNIST): images (N, H, W) or (N, C, H, W) of bytes, labels (N) of bytes.
public struct IDXImageSource: ImageSource {
    private let images: IDXFile
    private let labelValues: [Int]?
    public let count: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    public let normalization: InputNormalization

    public var name: String { images.path }

    /// - Parameters:
    ///   - imagesPath: the images file.
    ///   - labelsPath: the labels file; nil for none.
    ///   - normalization: applied to bytes scaled to [0, 1]; identity when nil.
    public init(imagesPath: String, labelsPath: String?, normalization: InputNormalization? = nil) throws {
        images = try IDXFile(path: imagesPath)
        let shape = images.shape
        switch shape.count {
        case 3: (count, channels, height, width) = (shape[0], 1, shape[1], shape[2])
        case 4: (count, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        default: throw DataSetError(source: imagesPath, message: "IDX images have shape \(shape); expected (N, H, W) or (N, C, H, W)")
        }
        let norm = normalization ?? .identity(channels: shape.count == 4 ? shape[1] : 1)
        try norm.validate(channels: shape.count == 4 ? shape[1] : 1)
        self.normalization = norm
        if let labelsPath {
            let labels = try IDXFile(path: labelsPath)
            guard labels.shape.count == 1 else {
                throw DataSetError(source: labelsPath, message: "IDX labels have shape \(labels.shape); expected (N)")
            }
            guard labels.shape[0] == shape[0] else {
                throw DataSetError(source: labelsPath, message: "has \(labels.shape[0]) labels but \(imagesPath) has \(shape[0]) images")
            }
            labelValues = try labels.items(0..<labels.shape[0]).map(Int.init)
        } else {
            labelValues = nil
        }
    }

    public func pixels(_ range: Range<Int>) throws -> [Float] {
        normalization.apply(try images.items(range), planeSize: height * width)
    }

    public func labels(_ range: Range<Int>) throws -> [Int]? {
        labelValues.map { Array($0[range]) }
    }
}
