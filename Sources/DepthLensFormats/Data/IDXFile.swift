import DepthLensModel
import Foundation

/// An IDX file (the MNIST, Fashion-MNIST and KMNIST format), gzipped or not: a magic
/// number giving the element type and rank, big-endian 32-bit extents, then the data.
/// Only unsigned-byte data (type 0x08), the type these data sets use, is read.
struct IDXFile: Sendable {
    let reader: GzipReader
    let shape: [Int]
    let dataOffset: Int

    init(path: String) throws {
        reader = try GzipReader(path: path)
        let magic: [UInt8]
        do {
            magic = try reader.read(count: 4, at: 0)
        } catch {
            throw DataSetError(source: path, message: "too short to be an IDX file")
        }
        guard magic[0] == 0, magic[1] == 0 else {
            throw DataSetError(source: path, message: "not an IDX file (magic number \(magic.map { String($0, radix: 16) }))")
        }
        guard magic[2] == 0x08 else {
            throw DataSetError(source: path, message: "IDX element type 0x\(String(magic[2], radix: 16)) is not supported; expected unsigned bytes (0x08)")
        }
        let rank = Int(magic[3])
        guard (1...4).contains(rank) else { throw DataSetError(source: path, message: "IDX rank \(rank) is not 1 to 4") }
        let header = try reader.read(count: 4 * rank, at: 4)
        shape = (0..<rank).map { i in header[(4 * i)..<(4 * i + 4)].reduce(0) { $0 << 8 | Int($1) } }
        dataOffset = 4 + 4 * rank
        // Four extents up to 2^28 each overflow Int when multiplied: multiply with a check
        // (an overflow trapped here; found by fuzzing).
        let total = shape.reduce(Optional(1)) { product, extent in
            product.flatMap { p in
                let (value, overflow) = p.multipliedReportingOverflow(by: extent)
                return overflow ? nil : value
            }
        }
        guard shape.allSatisfy({ $0 > 0 && $0 <= 1 << 28 }), let total, total <= 1 << 36 else {
            let size = total.map { "\($0) bytes" } ?? "more bytes than can be counted"
            throw DataSetError(source: path, message: "IDX header declares shape \(shape) (\(size)); extents must be 1...2^28 and the data at most 2^36 bytes (damaged file?)")
        }
        // A plain (not gzipped) file must hold what its header declares.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, !Self.isGzipped(path) {
            let declared = dataOffset + shape.reduce(1, *)
            guard size >= declared else {
                throw DataSetError(source: path, message: "IDX header declares shape \(shape) (\(declared) bytes), but the file has \(size) bytes (truncated?)")
            }
        }
    }

    var path: String { reader.path }

    static func isGzipped(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 2)) == Data([0x1f, 0x8b])
    }

    /// The bytes of items `range` along the first dimension.
    func items(_ range: Range<Int>) throws -> [UInt8] {
        let itemSize = shape.dropFirst().reduce(1, *)
        return try reader.read(count: range.count * itemSize, at: dataOffset + range.lowerBound * itemSize)
    }
}
