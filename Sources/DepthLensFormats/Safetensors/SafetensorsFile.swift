import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `.safetensors` file (timm's and Hugging Face's distribution format), opened for reading.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON (an object mapping
/// each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional
/// `__metadata__` map of strings), then the data section; offsets count from its start.
///
/// Opening reads and checks the header alone: the length (at most 100 MB, as the
/// reference implementation allows, and within the file), valid JSON, an object, no name
/// listed twice, every entry's dtype known, its shape non-negative integers whose element
/// count does not overflow, its offsets inside the data section and exactly
/// `count x dtype size` bytes apart. Offsets may overlap or leave gaps (the format does
/// not forbid it; nothing is read twice into memory because of it). Tensors are read one
/// at a time (`pread`), so memory holds one tensor's bytes and its float32 copy at most.
public final class SafetensorsFile: @unchecked Sendable {
    /// An element type of the format, with its size in bytes.
    public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
        case bool = "BOOL", u8 = "U8", i8 = "I8", f8E5M2 = "F8_E5M2", f8E4M3 = "F8_E4M3", f8E8M0 = "F8_E8M0"
        case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
        case i32 = "I32", u32 = "U32", f32 = "F32"
        case f64 = "F64", i64 = "I64", u64 = "U64", c64 = "C64"

        public var size: Int {
            switch self {
            case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0: return 1
            case .i16, .u16, .f16, .bf16: return 2
            case .i32, .u32, .f32: return 4
            case .f64, .i64, .u64, .c64: return 8
            }
        }

        /// F32, F16, BF16 and F64: the types read as float32 (F64 rounded, as for HDF5 files).
        public var isReadableAsFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) }

        public var description: String { rawValue }
    }

    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public var dtype: DType
        public var shape: [Int]
        /// Number of elements (the product of `shape`).
        public var count: Int
        /// Byte range in the data section.
        public var offsets: Range<Int>
    }

    /// The largest header the reference implementation reads.
    public static let maximumHeaderLength = 100_000_000

    public let path: String
    /// Tensor names in the order of the header.
    public let names: [String]
    public let entries: [String: Entry]
    /// The header's `__metadata__` (free-form strings; `format` is `pt` for PyTorch).
    public let metadata: [String: String]
    /// Byte offset of the data section in the file.
    public let dataStart: Int
    private let descriptor: Int32

    private init(path: String, names: [String], entries: [String: Entry], metadata: [String: String],
                 dataStart: Int, descriptor: Int32) {
        self.path = path
        self.names = names
        self.entries = entries
        self.metadata = metadata
        self.dataStart = dataStart
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Whether the file at `path` is to be read as safetensors rather than HDF5: it does not
    /// start with the HDF5 signature, and either its name ends in `.safetensors` or its
    /// ninth byte (the header's first) is `{`.
    public static func isSafetensors(path: String) -> Bool {
        let descriptor = Glibc.open(path, O_RDONLY)
        guard descriptor >= 0 else { return path.hasSuffix(".safetensors") }
        defer { close(descriptor) }
        var prefix = [UInt8](repeating: 0, count: 9)
        let got = prefix.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 9, 0) }
        if got >= 8, prefix[0..<8].elementsEqual([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return false }
        return path.hasSuffix(".safetensors") || (got == 9 && prefix[8] == UInt8(ascii: "{"))
    }

    /// Opens `path` and checks its header (see the type's documentation).
    /// - Throws: ``CheckpointError`` naming the file, the tensor (or `header`) and the problem.
    public static func open(_ path: String) throws -> SafetensorsFile {
        func fail(_ location: String, _ message: String) -> CheckpointError {
            CheckpointError(file: path, location: location, message: message)
        }
        if let problem = RegularFile.problem(path), problem != "is a folder" {
            throw CheckpointError(file: path, location: "", message: "\(problem), not a safetensors file")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointError(file: path, location: "", message: "no such file")
        }
        guard !isDirectory.boolValue else { throw CheckpointError(file: path, location: "", message: "is a directory, not a safetensors file") }
        let descriptor = Glibc.open(path, O_RDONLY)
        guard descriptor >= 0 else { throw CheckpointError(file: path, location: "", message: "cannot be read (permissions?)") }
        var keep = false
        defer { if !keep { close(descriptor) } }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw CheckpointError(file: path, location: "", message: "cannot be read") }
        let fileSize = Int(status.st_size)

        guard fileSize >= 8 else {
            throw fail("header", "the file has \(fileSize) bytes, too few for the 8-byte header length a safetensors file starts with")
        }
        var lengthBytes = [UInt8](repeating: 0, count: 8)
        try readExactly(descriptor, into: &lengthBytes, at: 0) { fail("header", "cannot read the header length") }
        let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(maximumHeaderLength) else {
            throw fail("header", "declares a \(length)-byte JSON header, more than the \(maximumHeaderLength) bytes safetensors allows (not a safetensors file?)")
        }
        guard Int(length) <= fileSize - 8 else {
            throw fail("header", "declares a \(length)-byte JSON header, but only \(fileSize - 8) bytes follow the header length (truncated?)")
        }
        var headerBytes = [UInt8](repeating: 0, count: Int(length))
        try readExactly(descriptor, into: &headerBytes, at: 8) { fail("header", "cannot read the \(length)-byte JSON header") }
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw fail("header", "the \(length)-byte header is not a JSON object (it does not start with '{')")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw fail("header", "the \(length)-byte header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw fail("header", "the header is JSON but not an object mapping tensor names to dtype, shape and data_offsets")
        }
        let order = topLevelKeys(headerBytes)
        var seen = Set<String>()
        for key in order where !seen.insert(key).inserted {
            throw fail(key, "listed twice in the header")
        }

        var metadata: [String: String] = [:]
        if let raw = object["__metadata__"] {
            guard let map = raw as? [String: Any] else { throw fail("__metadata__", "must be an object of strings") }
            for (key, value) in map {
                guard let text = value as? String else { throw fail("__metadata__", "value of '\(key)' is not a string") }
                metadata[key] = text
            }
        }
        let dataSize = fileSize - 8 - Int(length)
        var entries: [String: Entry] = [:]
        var names = order.filter { $0 != "__metadata__" && object[$0] != nil }
        names += object.keys.filter { $0 != "__metadata__" && !seen.contains($0) }.sorted()
        for name in names {
            entries[name] = try entry(name, object[name]!, dataSize: dataSize, fail: fail)
        }
        keep = true
        return SafetensorsFile(path: path, names: names, entries: entries, metadata: metadata,
                               dataStart: 8 + Int(length), descriptor: descriptor)
    }

    /// Checks one header entry.
    private static func entry(_ name: String, _ value: Any, dataSize: Int,
                              fail: (String, String) -> CheckpointError) throws -> Entry {
        guard let fields = value as? [String: Any] else {
            throw fail(name, "header entry is not an object with dtype, shape and data_offsets")
        }
        for field in ["dtype", "shape", "data_offsets"] where fields[field] == nil {
            throw fail(name, "header entry has no '\(field)'")
        }
        guard let dtypeName = fields["dtype"] as? String, let dtype = DType(rawValue: dtypeName) else {
            throw fail(name, "unknown dtype \(render(fields["dtype"]!)) (known: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let shape = integers(fields["shape"]!) else {
            throw fail(name, "shape \(render(fields["shape"]!)) is not a list of non-negative integers")
        }
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw fail(name, "shape \(shape) has more elements than can be counted") }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw fail(name, "shape \(shape) of \(dtype) needs more bytes than can be counted") }
        guard let offsets = integers(fields["data_offsets"]!), offsets.count == 2 else {
            throw fail(name, "data_offsets \(render(fields["data_offsets"]!)) is not two non-negative integers [begin, end]")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw fail(name, "data_offsets [\(begin), \(end)] end before they begin") }
        guard end <= dataSize else {
            throw fail(name, "data_offsets [\(begin), \(end)] reach beyond the \(dataSize)-byte data section (truncated?)")
        }
        guard end - begin == bytes else {
            throw fail(name, "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but shape \(shape) of \(dtype) needs \(bytes)")
        }
        return Entry(dtype: dtype, shape: shape, count: count, offsets: begin..<end)
    }

    /// Reads tensor `name` as float32: F32 as stored, F16 and BF16 widened exactly, F64 rounded.
    /// - Throws: ``CheckpointError`` for an unknown name, a dtype that is not a float type,
    ///   or a file that ends before the tensor's bytes (it changed since it was opened).
    public func readFloats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else { throw CheckpointError(file: path, location: name, message: "no such tensor") }
        let at = dataStart + entry.offsets.lowerBound
        let fail = { CheckpointError(file: self.path, location: name, message: "the file ends before the tensor's \(entry.offsets.count) bytes at byte \(at)") }
        switch entry.dtype {
        case .f32:
            var values = [Float](repeating: 0, count: entry.count)
            try Self.readExactly(descriptor, into: &values, at: at, fail)
            #if _endian(big)
            values = values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) }
            #endif
            return values
        case .f16:
            var bits = [UInt16](repeating: 0, count: entry.count)
            try Self.readExactly(descriptor, into: &bits, at: at, fail)
            return bits.map { Float(Float16(bitPattern: UInt16(littleEndian: $0))) }
        case .bf16:
            var bits = [UInt16](repeating: 0, count: entry.count)
            try Self.readExactly(descriptor, into: &bits, at: at, fail)
            return bits.map { Float(bitPattern: UInt32(UInt16(littleEndian: $0)) << 16) }
        case .f64:
            var bits = [UInt64](repeating: 0, count: entry.count)
            try Self.readExactly(descriptor, into: &bits, at: at, fail)
            return bits.map { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
        default:
            throw CheckpointError(file: path, location: name, message: "has \(entry.dtype) elements; tensors must be F32, F16, BF16 or F64")
        }
    }

    /// Fills `buffer` from the file at byte `offset`, or throws `fail()` if the file ends first.
    private static func readExactly<T>(_ descriptor: Int32, into buffer: inout [T], at offset: Int,
                                       _ fail: () -> CheckpointError) throws {
        try buffer.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                let got = pread(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if got < 0, errno == EINTR { continue }
                guard got > 0 else { throw fail() }
                done += got
            }
        }
    }

    /// Non-negative integers, or nil (booleans and fractions are not integers).
    private static func integers(_ value: Any) -> [Int]? {
        guard let list = value as? [Any] else { return nil }
        var result: [Int] = []
        for item in list {
            // Foundation's parser gives booleans objCType "c" and fractions "d"; on Linux,
            // `is Bool` is true of the numbers 0 and 1 too, so it cannot tell them apart.
            guard let number = item as? NSNumber, !["c", "d", "f"].contains(String(cString: number.objCType)),
                  let integer = Int(number.stringValue), integer >= 0 else { return nil }
            result.append(integer)
        }
        return result
    }

    /// A JSON value in a message, shortened.
    private static func render(_ value: Any) -> String {
        let text: String
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "\(value)"
        }
        return text.count > 60 ? String(text.prefix(57)) + "..." : text
    }

    /// The keys of the top-level JSON object in `bytes`, in order, duplicates kept
    /// (Foundation's parser silently keeps one of two equal keys). Assumes valid JSON.
    static func topLevelKeys(_ bytes: [UInt8]) -> [String] {
        var keys: [String] = []
        var depth = 0, i = 0
        var expectKey = false
        while i < bytes.count {
            let byte = bytes[i]
            switch byte {
            case UInt8(ascii: "{"):
                depth += 1
                expectKey = depth == 1
            case UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectKey = depth == 1
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                    i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1
                }
                if expectKey, depth == 1, i < bytes.count {
                    let literal = Data(bytes[start...i])
                    if let key = try? JSONSerialization.jsonObject(with: literal, options: .fragmentsAllowed) as? String {
                        keys.append(key)
                    }
                    expectKey = false
                }
            default:
                break
            }
            i += 1
        }
        return keys
    }
}
