import DepthLensModel

/// A data set of images (and optionally labels) that can be read in slices, so that
/// evaluation streams in batches and memory does not grow with the data set.
public protocol ImageSource {
    /// Number of images.
    var count: Int { get }
    var channels: Int { get }
    var height: Int { get }
    var width: Int { get }
    /// A short description for messages, such as the file path and dataset name.
    var name: String { get }
    /// The network-input values of images `range`, NCHW, row-major.
    func pixels(_ range: Range<Int>) throws -> [Float]
    /// Class labels of images `range`, or nil when the source has none.
    func labels(_ range: Range<Int>) throws -> [Int]?
}

extension ImageSource {
    /// Images `range` as a batch.
    public func batch(_ range: Range<Int>) throws -> ImageBatch {
        ImageBatch(count: range.count, channels: channels, height: height, width: width, pixels: try pixels(range))
    }
}

/// A problem with a data set, naming the file and what is wrong.
public struct DataSetError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var message: String

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}
