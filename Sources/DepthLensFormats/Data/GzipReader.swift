import CZlib
import DepthLensModel
import Foundation

/// Sequential reader over a file that may be gzipped (zlib reads plain files as they are).
/// Seeking forward is cheap when reads come in order, which is how batches stream.
final class GzipReader: @unchecked Sendable {
    let path: String
    private let file: gzFile
    private let lock = NSLock()

    init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw DataSetError(source: path, message: isDirectory.boolValue ? "is a directory" : "no such file")
        }
        guard let file = gzopen(path, "rb") else {
            throw DataSetError(source: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        self.file = file
    }

    deinit { gzclose(file) }

    /// Reads exactly `count` bytes starting at uncompressed offset `offset`.
    func read(count: Int, at offset: Int) throws -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        if gzseek(file, offset, SEEK_SET) != offset {
            throw DataSetError(source: path, message: "file ends before byte \(offset) (truncated?)")
        }
        // Grown as data arrives, so a file that declares more than it holds fails at its
        // end instead of first allocating what it declares.
        var bytes = [UInt8](repeating: 0, count: min(count, 1 << 24))
        var filled = 0
        while filled < count {
            if filled == bytes.count { bytes += [UInt8](repeating: 0, count: min(count - filled, bytes.count)) }
            let chunk = Int32(min(bytes.count - filled, 1 << 30))
            let n = bytes.withUnsafeMutableBytes { gzread(file, $0.baseAddress! + filled, UInt32(chunk)) }
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
                throw DataSetError(source: path, message: "cannot read (\(message); damaged gzip data?)")
            }
            if n == 0 {
                throw DataSetError(source: path, message: "file ends after \(offset + filled) bytes, expected at least \(offset + count) (truncated?)")
            }
            filled += Int(n)
        }
        return bytes
    }
}
