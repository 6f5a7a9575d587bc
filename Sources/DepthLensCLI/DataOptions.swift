import ArgumentParser
import DepthLens
import Foundation

/// Which images to read, from flags.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Images: HDF5, IDX (gzipped or not), or CIFAR binary batches (comma-separated .bin files). Default: the data set the checkpoint records, when installed.", valueName: "path"))
    var data: String?

    @Option(help: ArgumentHelp("IDX labels file (default: the images file name with images-idx3 -> labels-idx1).", valueName: "path"))
    var labels: String?

    @Option(help: "Images dataset inside an HDF5 file.")
    var imagesDataset = "images"

    @Option(help: "Labels dataset inside an HDF5 file.")
    var labelsDataset = "labels"

    @Option(help: ArgumentHelp("Normalisation mean per channel, comma-separated (default: the checkpoint's). 8-bit pixels are scaled to 0...1 first; float HDF5 images, read as stored by default, are normalised as (x - mean) / std when given.", valueName: "m1,m2,..."))
    var mean: String?

    @Option(help: ArgumentHelp("Normalisation std per channel, comma-separated (default: the checkpoint's); see --mean.", valueName: "s1,s2,..."))
    var std: String?

    @Option(help: "Skip this many images first.")
    var offset = 0

    @Option(help: "Use at most this many images.")
    var limit: Int?

    func validate() throws {
        guard offset >= 0 else { throw ValidationError("--offset must be zero or positive.") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive.") }
        if (mean == nil) != (std == nil) { throw ValidationError("Give --mean and --std together.") }
        if let means = try numbers(mean, flag: "--mean"), let stds = try numbers(std, flag: "--std") {
            try Self.checkNormalization(mean: means, std: stds)
        }
    }

    /// 8-bit pixels are scaled to 0...1, then normalised as (x - mean) / std: a std of
    /// zero or below, or one so small that the result overflows a float, is refused here,
    /// before any image is read, rather than found as non-finite logits.
    static func checkNormalization(mean: [Float], std: [Float]) throws {
        if let bad = std.first(where: { $0 <= 0 }) { throw ValidationError("--std: \(bad) is not positive.") }
        for c in 0..<max(mean.count, std.count) {
            let m = mean[mean.count == 1 ? 0 : min(c, mean.count - 1)], s = std[std.count == 1 ? 0 : min(c, std.count - 1)]
            guard ((0 - m) / s).isFinite, ((1 - m) / s).isFinite else {
                throw ValidationError("--std: normalising pixels in 0...1 with mean \(m) and std \(s) gives values beyond the largest float (\(Float.greatestFiniteMagnitude)); give a larger std.")
            }
        }
    }

    private func numbers(_ text: String?, flag: String) throws -> [Float]? {
        guard let text else { return nil }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map {
            guard let value = Float($0.trimmingCharacters(in: .whitespaces)), value.isFinite else {
                throw ValidationError("\(flag): '\($0)' is not a number.")
            }
            return value
        }
    }

    /// Opens the images for `checkpoint`.
    func open(for checkpoint: Checkpoint) throws -> any ImageSource {
        let request = try self.request(for: checkpoint)
        // The slice is taken here, so that its errors name the flags.
        let whole = try request.open(for: checkpoint)
        guard offset <= whole.count else {
            throw CLIError("\(whole.name): --offset \(offset) is beyond the \(whole.count) images")
        }
        return try SubsetSource(whole, offset: offset, limit: limit)
    }

    /// The data set the flags name for `checkpoint` (the whole file: the slice is `open`'s).
    func request(for checkpoint: Checkpoint) throws -> DataSetRequest {
        var request: DataSetRequest
        if let data {
            request = DataSetRequest(path: data)
        } else if let fallback = InstalledDataSets.testSet(for: checkpoint) {
            guard FileManager.default.fileExists(atPath: fallback.path) else {
                throw CLIError("the Fashion-MNIST test set is not installed at \(fallback.path); install it with `apt-get install dataset-fashion-mnist`, or give --data")
            }
            request = fallback
        } else {
            throw CLIError("\(checkpoint.path) does not record a data set DepthLens knows how to find; give --data")
        }
        request.labelsPath = labels
        request.imagesDataset = imagesDataset
        request.labelsDataset = labelsDataset
        request.normalization = try normalization()
        return request
    }

    /// The normalisation `--mean/--std` give (nil: the checkpoint's), for every image set
    /// the run feeds the network (the data, and batch-norm recalibration's images).
    func normalization() throws -> InputNormalization? {
        guard let mean = try numbers(mean, flag: "--mean"), let std = try numbers(std, flag: "--std") else { return nil }
        return InputNormalization(mean: mean, std: std)
    }
}

/// Where the command line looks for a checkpoint's data set when no path is given:
/// Debian's `dataset-fashion-mnist` package. (The library itself knows no install paths.)
enum InstalledDataSets {
    static let fashionMNISTTest = DataSetRequest(path: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    static let fashionMNISTTrain = DataSetRequest(path: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

    /// The test split of the data set `checkpoint` records, when DepthLens knows where it is installed.
    static func testSet(for checkpoint: Checkpoint) -> DataSetRequest? {
        checkpoint.training?.dataset?.lowercased() == "fashion-mnist" ? fashionMNISTTest : nil
    }

    /// The training split (for batch-norm recalibration), likewise.
    static func trainingSet(for checkpoint: Checkpoint) -> DataSetRequest? {
        checkpoint.training?.dataset?.lowercased() == "fashion-mnist" ? fashionMNISTTrain : nil
    }
}

/// A runtime failure of the command line itself, printed once as `Error: message`.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
