import Foundation

/// What a file held when a run read it: its size and the XXH64 hash of every byte.
///
/// A resumed run compares the fingerprints it records with the files it is given now, so
/// that a replaced data file, or a checkpoint rewritten with its size and modification
/// time kept, is noticed rather than mixing old and new results. Content, not metadata:
/// touching or copying a file changes nothing.
public struct ContentFingerprint: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var bytes: UInt64
    public var hash: UInt64

    public init(path: String, bytes: UInt64, hash: UInt64) {
        self.path = path
        self.bytes = bytes
        self.hash = hash
    }

    /// Reads `path` through (in 1 MiB pieces) and hashes it.
    /// - Throws: ``FingerprintError`` naming the file when it cannot be read.
    public static func of(file path: String) throws -> ContentFingerprint {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FingerprintError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw FingerprintError(path: path, reason: "not a regular file")
        }
        var hasher = XXHash64()
        let size = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(descriptor, buffer.baseAddress, size)
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw FingerprintError(path: path, reason: String(cString: strerror(errno)))
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return ContentFingerprint(path: path, bytes: hasher.length, hash: hasher.finalize())
    }

    /// `xxh64:<16 hex digits>, <bytes> bytes`, as a progress journal records it.
    public var description: String { "xxh64:\(XXHash64.hex(hash)), \(bytes) bytes" }
}

/// A file that could not be read through to fingerprint it.
public struct FingerprintError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String
    public var description: String { "\(path): cannot be read to fingerprint its content: \(reason)" }
}
