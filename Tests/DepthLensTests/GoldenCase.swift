import DepthLens

/// The gates of a golden case: none (all on), a shared vector (rank 1), or one vector per
/// example (rank 2, examples x blocks), as tools/make_golden.py and
/// tools/make_interop_golden.py write them.
func goldenGates(_ golden: HDF5Group) throws -> Gates {
    guard golden.contains("gates") else { return .allOn }
    let g = try golden.dataset("gates")
    let values = try g.readFloats()
    guard g.shape.count == 2 else { return .shared(values) }
    let blocks = g.shape[1]
    return .perExample((0..<g.shape[0]).map { Array(values[($0 * blocks)..<(($0 + 1) * blocks)]) })
}

/// The images of a golden cases file (its `images` dataset, N x C x H x W) as one batch.
func goldenImages(_ cases: HDF5Group) throws -> ImageBatch {
    let images = try cases.dataset("images")
    let shape = images.shape
    return ImageBatch(count: shape[0], channels: shape[1], height: shape[2], width: shape[3], pixels: try images.readFloats())
}

/// One batch as an unlabelled image source, for calls that take a source (batch-norm
/// recalibration).
struct BatchSource: ImageSource {
    let batch: ImageBatch
    init(_ batch: ImageBatch) { self.batch = batch }
    var name: String { "memory" }
    var count: Int { batch.count }
    var channels: Int { batch.channels }
    var height: Int { batch.height }
    var width: Int { batch.width }
    func pixels(_ range: Range<Int>) throws -> [Float] {
        Array(batch.pixels[(range.lowerBound * batch.imageSize)..<(range.upperBound * batch.imageSize)])
    }
    func labels(_ range: Range<Int>) throws -> [Int]? { nil }
}
