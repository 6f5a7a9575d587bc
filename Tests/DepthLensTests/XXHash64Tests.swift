import DepthLens
import Foundation
import XCTest

/// XXH64 as the reference implementation computes it: the published sanity vectors of
/// xxHash's own test program, any split of the input, and (where the system has
/// libxxhash) every length from 0 to 300 and the bundled files against the library itself.
final class XXHash64Tests: XCTestCase {
    /// xxHash's sanity buffer (`xxhsum`'s `BMK_fillTestBuffer`): byte i is the top byte of
    /// 2654435761 x 11400714785074694797^i (mod 2^64).
    static func sanityBuffer(_ count: Int) -> [UInt8] {
        var generator: UInt64 = 2_654_435_761
        return (0..<count).map { _ in
            defer { generator &*= 11_400_714_785_074_694_797 }
            return UInt8(generator >> 56)
        }
    }

    func testPublishedVectors() {
        let buffer = Self.sanityBuffer(222)
        let prime: UInt64 = 2_654_435_761
        // xxHash's sanity checks (tests/sanity_test_vectors.h and xxhsum's BMK_sanityCheck).
        let vectors: [(length: Int, seed: UInt64, hash: UInt64)] = [
            (0, 0, 0xEF46_DB37_51D8_E999), (1, 0, 0xE934_A84A_DB05_2768), (1, prime, 0x5014_6076_43A9_B4C3),
            (4, 0, 0x9136_A0DC_A574_57EE), (14, 0, 0x8282_DCC4_994E_35C8), (14, prime, 0xC3BD_6BF6_3DEB_6DF0),
            (222, 0, 0xB641_AE8C_B691_C174), (222, prime, 0x20CB_8AB7_AE10_C14A),
        ]
        for v in vectors {
            XCTAssertEqual(XXHash64.hash(buffer.prefix(v.length), seed: v.seed), v.hash, "length \(v.length), seed \(v.seed)")
        }
        XCTAssertEqual(XXHash64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXHash64.hex(0xEF46_DB37_51D8_E999), "ef46db3751d8e999")
        XCTAssertEqual(XXHash64.hex(0x1F), "000000000000001f")
    }

    func testAnySplitOfTheInputGivesTheSameHash() {
        let buffer = Self.sanityBuffer(1000)
        let whole = XXHash64.hash(buffer)
        for pieces in [[1, 31, 32, 33, 903], [7, 7, 7, 979], [500, 500], [64, 0, 936], [999, 1]] {
            var hasher = XXHash64()
            var start = 0
            for size in pieces {
                hasher.update(Array(buffer[start..<(start + size)]))
                start += size
            }
            XCTAssertEqual(hasher.finalize(), whole, "\(pieces)")
            XCTAssertEqual(hasher.length, 1000)
        }
    }

    /// libxxhash's `XXH64`, when the system has it (Debian: libxxhash0, a dependency of
    /// rsync and zstd); nil otherwise.
    typealias XXH64Function = @convention(c) (UnsafeRawPointer?, Int, UInt64) -> UInt64
    static func systemXXH64() -> XXH64Function? {
        guard let library = dlopen("libxxhash.so.0", RTLD_NOW), let symbol = dlsym(library, "XXH64") else { return nil }
        return unsafeBitCast(symbol, to: XXH64Function.self)
    }

    func testEveryLengthAndTheBundledFilesAgreeWithTheSystemLibrary() throws {
        guard let reference = Self.systemXXH64() else { throw XCTSkip("libxxhash.so.0 is not installed") }
        let buffer = Self.sanityBuffer(300)
        for length in 0...300 {
            for seed: UInt64 in [0, 1, 0xFFFF_FFFF_FFFF_FFFF] {
                let expected = buffer.withUnsafeBytes { reference($0.baseAddress, length, seed) }
                XCTAssertEqual(XXHash64.hash(buffer.prefix(length), seed: seed), expected, "length \(length), seed \(seed)")
            }
        }
        // The files a resumed run fingerprints on the bundled defaults: the hash of every byte.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let files = [root.appendingPathComponent("data/fmnist-sd54.h5").path,
                     "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                     "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"].filter { FileManager.default.fileExists(atPath: $0) }
        var seconds = 0.0, bytes: UInt64 = 0
        for file in files {
            let started = Date()
            let print = try ContentFingerprint.of(file: file)
            seconds += Date().timeIntervalSince(started)
            bytes += print.bytes
            let contents = try Data(contentsOf: URL(fileURLWithPath: file))
            XCTAssertEqual(print.bytes, UInt64(contents.count), file)
            XCTAssertEqual(print.hash, contents.withUnsafeBytes { reference($0.baseAddress, contents.count, 0) }, file)
        }
        // Reported, not asserted (docs/reliability.md quotes it).
        Swift.print(String(format: "fingerprinted %d file(s), %llu bytes, in %.1f ms", files.count, bytes, seconds * 1000))
    }

    func testAFileThatCannotBeReadIsNamed() {
        XCTAssertThrowsError(try ContentFingerprint.of(file: "/nonexistent/file.h5")) {
            XCTAssertEqual("\($0)", "/nonexistent/file.h5: cannot be read to fingerprint its content: No such file or directory")
        }
        XCTAssertThrowsError(try ContentFingerprint.of(file: "/tmp")) {
            XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)")
        }
    }
}
