import DepthLensModel
import Foundation

/// Which images to evaluate, as a user names them: a file (HDF5, IDX, or CIFAR binary
/// batches), how to read it, and which slice of it.
public struct DataSetRequest: Sendable, Equatable {
    /// The images file; for CIFAR, one or more batch files separated by commas.
    public var path: String
    /// An IDX labels file; by default the images file's name with `images-idx3` replaced
    /// by `labels-idx1`, when that file exists.
    public var labelsPath: String?
    /// Dataset names inside an HDF5 file.
    public var imagesDataset = "images"
    public var labelsDataset = "labels"
    /// Overrides the checkpoint's recorded normalisation of 8-bit pixels; for float HDF5
    /// images, which are read as stored, it is applied to the stored values as given
    /// ((x - mean) / std): an explicit request is never ignored.
    public var normalization: InputNormalization?
    public var offset = 0
    public var limit: Int?

    public init(path: String) { self.path = path }

    /// The file formats DepthLens reads.
    public enum Format: String, Sendable {
        case hdf5, idx, cifar
    }

    /// Tells the format from the first bytes of the file (and `.bin` for CIFAR).
    public static func format(of path: String) throws -> Format {
        let first = path.split(separator: ",").first.map(String.init) ?? path
        for part in path.split(separator: ",").map(String.init) { try requireRegularFile(part) }
        guard let handle = FileHandle(forReadingAtPath: first) else {
            let exists = FileManager.default.fileExists(atPath: first)
            throw DataSetError(source: first, message: exists ? "cannot be read (permissions?)" : "no such file")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 8)) ?? Data())
        if head.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) { return .hdf5 }
        // IDX: two zero bytes, a type code (0x08 bytes ... 0x0E doubles) and a rank; the
        // reader then names an unsupported type.
        if head.starts(with: [0x1f, 0x8b]) || (head.count >= 4 && head[0] == 0 && head[1] == 0
                                                && [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E].contains(head[2])) {
            return .idx
        }
        if first.hasSuffix(".bin") { return .cifar }
        throw DataSetError(source: first, message: head.isEmpty ? "file is empty"
            : "is neither HDF5, IDX (optionally gzipped) nor a CIFAR binary batch (.bin)")
    }

    /// Refuses what is not a regular file (after symbolic links): opening a named pipe
    /// would wait for a writer forever, and a device or folder is no data set. A path
    /// that does not exist passes, so that opening it reports it.
    static func requireRegularFile(_ path: String) throws {
        guard let problem = RegularFile.problem(path) else { return }
        throw DataSetError(source: path, message: "\(problem); give a regular file (DepthLens reads data sets by seeking)")
    }

    /// Opens the images for `checkpoint`, normalised as the checkpoint records (or as
    /// overridden), and checks that they fit the network's input channels.
    public func open(for checkpoint: Checkpoint) throws -> any ImageSource {
        let recorded = checkpoint.training?.normalization.map {
            InputNormalization(mean: $0.mean.map { Float($0) }, std: $0.std.map { Float($0) })
        }
        let norm = normalization ?? recorded
        let source: any ImageSource
        switch try Self.format(of: path) {
        case .hdf5:
            source = try HDF5ImageSource(path: path, imagesDataset: imagesDataset, labelsDataset: labelsDataset,
                                         normalization: norm, floatNormalization: normalization)
        case .idx:
            source = try IDXImageSource(imagesPath: path, labelsPath: try idxLabels(), normalization: norm)
        case .cifar:
            source = try CIFARBinarySource(paths: path.split(separator: ",").map(String.init), normalization: norm)
        }
        let arch = checkpoint.architecture
        guard source.channels == arch.inChannels else {
            throw DataSetError(source: source.name,
                               message: "images have \(source.channels) channel(s), but \(checkpoint.path) takes \(arch.inChannels)")
        }
        if let size = checkpoint.training?.inputSize, size != [source.height, source.width] {
            throw DataSetError(source: source.name,
                               message: "images are \(source.height)x\(source.width), but \(checkpoint.path) was trained on \(size[0])x\(size[1]) images (training.input_size)")
        }
        guard source.count > 0 else { throw DataSetError(source: source.name, message: "holds no images") }
        return try SubsetSource(source, offset: offset, limit: limit)
    }

    func idxLabels() throws -> String? {
        if let labelsPath { try Self.requireRegularFile(labelsPath); return labelsPath }
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard name.contains("images-idx3") else { return nil }
        let guess = URL(fileURLWithPath: path).deletingLastPathComponent()
            .appendingPathComponent(name.replacingOccurrences(of: "images-idx3", with: "labels-idx1")).path
        guard FileManager.default.fileExists(atPath: guess) else { return nil }
        try Self.requireRegularFile(guess)
        return guess
    }
}
