import DepthLensModel
import Foundation

/// Images from CIFAR-10 or CIFAR-100 binary batch files (`data_batch_1.bin`,
/// `test_batch.bin`; `train.bin`, `test.bin`): records of label byte(s) then 3x32x32
/// pixel bytes in CHW order. CIFAR-100 records carry a coarse then a fine label; the
/// fine label is used.
public struct CIFARBinarySource: ImageSource {
    /// Which layout the records have.
    public enum Variant: String, Sendable, CaseIterable {
        case cifar10, cifar100

        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var recordSize: Int { labelBytes + 3072 }
    }

    private let files: [(reader: GzipReader, records: Int)]
    public let variant: Variant
    public let count: Int
    public let channels = 3
    public let height = 32
    public let width = 32
    public let normalization: InputNormalization

    public var name: String { files.map(\.reader.path).joined(separator: ",") }

    /// Opens one or more batch files, read in the order given.
    /// - Parameter variant: nil to tell from the file sizes.
    public init(paths: [String], variant: Variant? = nil, normalization: InputNormalization? = nil) throws {
        guard !paths.isEmpty else { throw DataSetError(source: "CIFAR", message: "no batch files given") }
        var sizes: [Int] = []
        for path in paths {
            guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int else {
                throw DataSetError(source: path, message: "no such file")
            }
            sizes.append(size)
        }
        let chosen: Variant
        if let variant {
            chosen = variant
        } else if sizes.allSatisfy({ $0 > 0 && $0 % Variant.cifar10.recordSize == 0 }) {
            chosen = .cifar10
        } else if sizes.allSatisfy({ $0 > 0 && $0 % Variant.cifar100.recordSize == 0 }) {
            chosen = .cifar100
        } else {
            throw DataSetError(source: paths.joined(separator: ","),
                               message: "file sizes \(sizes) are not whole numbers of CIFAR-10 (3073-byte) or CIFAR-100 (3074-byte) records")
        }
        for (path, size) in zip(paths, sizes) where size % chosen.recordSize != 0 || size == 0 {
            throw DataSetError(source: path, message: "\(size) bytes is not a whole number of \(chosen.recordSize)-byte \(chosen.rawValue) records")
        }
        self.variant = chosen
        files = try zip(paths, sizes).map { (try GzipReader(path: $0), $1 / chosen.recordSize) }
        count = files.reduce(0) { $0 + $1.records }
        let norm = normalization ?? .identity(channels: 3)
        try norm.validate(channels: 3)
        self.normalization = norm
    }

    /// The records of `range`, across file boundaries.
    private func records(_ range: Range<Int>) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        var start = 0
        for file in files {
            let local = max(range.lowerBound, start)..<min(range.upperBound, start + file.records)
            if !local.isEmpty {
                let size = variant.recordSize
                let bytes = try file.reader.read(count: local.count * size, at: (local.lowerBound - start) * size)
                for r in 0..<local.count { result.append(Array(bytes[(r * size)..<((r + 1) * size)])) }
            }
            start += file.records
        }
        return result
    }

    public func pixels(_ range: Range<Int>) throws -> [Float] {
        let bytes = try records(range).flatMap { $0.dropFirst(variant.labelBytes) }
        return normalization.apply(bytes, planeSize: 1024)
    }

    public func labels(_ range: Range<Int>) throws -> [Int]? {
        try records(range).map { Int($0[variant.labelBytes - 1]) }
    }
}
