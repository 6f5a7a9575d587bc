import DepthLensModel
import Foundation

/// Checks, before libhdf5 opens a file, the fields that libhdf5 1.10 trusts and that a
/// damaged or crafted file can set to crash or hang it (found by fuzzing; see
/// docs/reliability.md):
///
/// - the superblock: version, address size, and the end-of-file address against the real
///   size (a truncated file);
/// - every global heap collection (`GCOL`, where variable-length strings live): its
///   objects must tile it, since an empty free-space object sends libhdf5's parser into
///   an endless loop and an oversized one past the collection;
/// - the variable-length attributes of the root group (the checkpoint's JSON metadata),
///   in version-1 object headers: each string must name an object its collection holds,
///   or libhdf5 indexes past its object table.
///
/// What is not checked (version-2 object headers, dense attribute storage, B-trees,
/// chunk indexes) is left to libhdf5's own checks.
enum HDF5Precheck {
    /// A description of the first problem found, or nil.
    static func problem(path: String, fileSize: Int) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return nil }
        return data.withUnsafeBytes { raw -> String? in
            let file = FileBytes(bytes: raw.bindMemory(to: UInt8.self))
            guard let superblock = Superblock(file) else { return nil }  // no signature at byte 0: a user block
            if let problem = superblock.problem { return problem }
            let heaps: [Int: [UInt64: UInt64]]
            switch globalHeaps(file) {
            case .failure(let problem): return problem.message
            case .success(let found): heaps = found
            }
            return vlenAttributeProblem(file, superblock: superblock, heaps: heaps)
        }
    }

    struct Problem: Error { var message: String }

    struct FileBytes {
        let bytes: UnsafeBufferPointer<UInt8>
        var count: Int { bytes.count }

        /// A little-endian unsigned integer of `width` bytes at `at`, or nil past the end.
        func uint(_ at: Int, _ width: Int) -> UInt64? {
            guard at >= 0, width <= 8, at <= count - width else { return nil }
            var value: UInt64 = 0
            for i in (0..<width).reversed() { value = value << 8 | UInt64(bytes[at + i]) }
            return value
        }
    }

    struct Superblock {
        var version: Int
        var offsetSize = 8
        var lengthSize = 8
        var rootHeader: UInt64?
        var problem: String?

        init?(_ file: FileBytes) {
            let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
            guard file.count >= 8, Array(file.bytes.prefix(8)) == signature else { return nil }
            let truncated = "file ends inside the HDF5 superblock (\(file.count) bytes; truncated?)"
            guard file.count > 8 else { version = -1; problem = truncated; return }
            version = Int(file.bytes[8])
            let offsetsAt: Int, baseAt: Int
            switch version {
            case 0, 1: (offsetsAt, baseAt) = (13, version == 0 ? 24 : 28)
            case 2, 3: (offsetsAt, baseAt) = (9, 12)
            default:
                problem = "HDF5 superblock version \(version) is not one libhdf5 1.10 reads (0 to 3); damaged file?"
                return
            }
            guard file.count > offsetsAt + 1 else { problem = truncated; return }
            offsetSize = Int(file.bytes[offsetsAt])
            lengthSize = Int(file.bytes[offsetsAt + 1])
            guard [2, 4, 8].contains(offsetSize) else {
                problem = "HDF5 superblock declares \(offsetSize)-byte addresses (2, 4 or 8 are valid); damaged file?"
                return
            }
            guard [2, 4, 8].contains(lengthSize) else {
                problem = "HDF5 superblock declares \(lengthSize)-byte lengths (2, 4 or 8 are valid); damaged file?"
                return
            }
            // v0/v1: base, free space, end of file, driver, then the root group's symbol
            // table entry (link name offset, object header address). v2/v3: base,
            // extension, end of file, root group object header.
            guard let base = file.uint(baseAt, offsetSize), let eof = file.uint(baseAt + 2 * offsetSize, offsetSize) else {
                problem = truncated
                return
            }
            rootHeader = file.uint(baseAt + (version < 2 ? 5 : 3) * offsetSize, offsetSize)
            let undefined = offsetSize == 8 ? UInt64.max : (UInt64(1) << UInt64(offsetSize * 8)) - 1
            if eof != undefined, base != undefined {
                let (end, overflow) = base.addingReportingOverflow(eof)
                if overflow || end > UInt64(file.count) {
                    problem = "the HDF5 superblock says the file is \(overflow ? "more than \(UInt64.max)" : "\(end)") bytes long, but it has \(file.count) (truncated or damaged?)"
                }
            }
            if base != 0 { rootHeader = nil }  // addresses are relative to a base: skip the attribute check
        }
    }

    /// The global heap collections: address -> (object index -> object size).
    static func globalHeaps(_ file: FileBytes) -> Result<[Int: [UInt64: UInt64]], Problem> {
        var heaps: [Int: [UInt64: UInt64]] = [:]
        guard let base = file.bytes.baseAddress, file.count >= 16 else { return .success(heaps) }
        var searchFrom = 0
        while searchFrom + 16 <= file.count,
              let hit = memchr(base + searchFrom, 0x47, file.count - searchFrom) {  // "G"
            let start = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            searchFrom = start + 1
            guard start + 16 <= file.count, file.bytes[start + 1] == 0x43, file.bytes[start + 2] == 0x4F,
                  file.bytes[start + 3] == 0x4C else { continue }
            // Version 1, as libhdf5 requires; it ignores the three reserved bytes, so must
            // this check (a collection with them set slipped past it; found by fuzzing).
            guard file.bytes[start + 4] == 1, let size = file.uint(start + 8, 8) else { continue }
            guard size >= 16, size <= UInt64(file.count - start) else {
                return .failure(Problem(message: "global heap collection at byte \(start) declares \(size) bytes, beyond the end of the \(file.count)-byte file (damaged file?)"))
            }
            let end = start + Int(size)
            var objects: [UInt64: UInt64] = [:]
            var p = start + 16
            while p < end {
                if p + 16 > end { break }  // too small for an object header: free space
                let index = file.uint(p, 2)!, objectSize = file.uint(p + 8, 8)!
                let aligned = objectSize > UInt64(end) ? UInt64.max : (objectSize + 7) & ~7
                let need = index > 0 ? (aligned == .max ? .max : 16 + aligned) : objectSize
                guard need > 0, need <= UInt64(end - p) else {
                    return .failure(Problem(message: "global heap collection at byte \(start) is damaged: object \(index) at byte \(p) declares \(objectSize) bytes\(need == 0 ? " (an empty free-space object)" : ", beyond the collection's end")"))
                }
                if index > 0 { objects[index] = objectSize }
                p += Int(need)
            }
            heaps[start] = objects
        }
        return .success(heaps)
    }

    /// Checks every variable-length element of the root group's attributes (version-1
    /// object header, its continuation blocks included) against the global heaps.
    static func vlenAttributeProblem(_ file: FileBytes, superblock: Superblock, heaps: [Int: [UInt64: UInt64]]) -> String? {
        guard let root = superblock.rootHeader, root < UInt64(file.count), file.uint(Int(root), 1) == 1 else { return nil }
        let o = superblock.offsetSize, l = superblock.lengthSize
        var blocks: [(start: Int, end: Int)] = []
        guard let headerSize = file.uint(Int(root) + 8, 4) else { return nil }
        blocks.append((Int(root) + 16, Int(root) + 16 + Int(headerSize)))
        var visited = Set<Int>()
        var messages = 0
        while let block = blocks.popLast() {
            guard visited.insert(block.start).inserted, block.end <= file.count else { continue }
            var p = block.start
            while p + 8 <= block.end, messages < 10_000 {
                messages += 1
                guard let type = file.uint(p, 2), let size = file.uint(p + 2, 2) else { break }
                let body = p + 8
                guard body + Int(size) <= block.end else { break }
                if type == 0x10, let offset = file.uint(body, o), let length = file.uint(body + o, l),
                   offset < UInt64(file.count), length <= UInt64(file.count) {
                    blocks.append((Int(offset), Int(offset) + Int(length)))
                } else if type == 0x0C, let problem = attributeProblem(file, at: body, size: Int(size), offsetSize: o, heaps: heaps) {
                    return problem
                }
                p = body + Int(size)
            }
        }
        return nil
    }

    /// One attribute message (versions 1 to 3): when its type is variable-length, each
    /// element's (length, collection address, object index) must name a held object.
    static func attributeProblem(_ file: FileBytes, at start: Int, size: Int, offsetSize o: Int,
                                 heaps: [Int: [UInt64: UInt64]]) -> String? {
        guard let version = file.uint(start, 1), (1...3).contains(version),
              let nameSize = file.uint(start + 2, 2), let typeSize = file.uint(start + 4, 2),
              let spaceSize = file.uint(start + 6, 2) else { return nil }
        func padded(_ n: UInt64) -> Int { version == 1 ? Int((n + 7) & ~7) : Int(n) }
        let nameAt = start + (version == 3 ? 9 : 8)
        let typeAt = nameAt + padded(nameSize)
        let spaceAt = typeAt + padded(typeSize)
        let dataAt = spaceAt + padded(spaceSize)
        // The name, type and dataspace must fit the message, and the name must end in its
        // terminating NUL: libhdf5 copies the name up to the NUL (a heap overflow past the
        // message otherwise; found by fuzzing).
        guard nameSize >= 1, dataAt <= start + size, nameAt + Int(nameSize) <= file.count else {
            return "an attribute message of the root group at byte \(start) declares parts (name \(nameSize), type \(typeSize), dataspace \(spaceSize) bytes) larger than the message (\(size) bytes) (damaged file?)"
        }
        guard file.bytes[nameAt + Int(nameSize) - 1] == 0 else {
            return "an attribute name of the root group at byte \(nameAt) is not terminated within its \(nameSize) bytes (damaged file?)"
        }
        guard let classAndVersion = file.uint(typeAt, 1), classAndVersion & 0x0F == 9 else { return nil }
        let name = String(decoding: file.bytes[nameAt..<min(nameAt + Int(nameSize), file.count)].prefix { $0 != 0 }, as: UTF8.self)
        // The base type follows the variable-length type's 8-byte header; its size field
        // is at bytes 4..<8 (found by fuzzing: a 16 MB base type made libhdf5 allocate 4.6 GB).
        guard let baseSize = file.uint(typeAt + 12, 4) else { return nil }
        // Dataspace: version, rank, flags, then (v1) five reserved bytes or (v2) a type byte.
        guard let spaceVersion = file.uint(spaceAt, 1), let rank = file.uint(spaceAt + 1, 1), rank <= 32 else { return nil }
        let dimsAt = spaceAt + (spaceVersion == 1 ? 8 : 4)
        var elements: UInt64 = 1
        for d in 0..<Int(rank) {
            guard let extent = file.uint(dimsAt + d * 8, 8) else { return nil }
            elements = elements.multipliedReportingOverflow(by: extent).partialValue
        }
        if spaceVersion >= 2, file.uint(spaceAt + 3, 1) == 2 { elements = 0 }  // null dataspace
        let elementSize = 4 + o + 4
        guard elements <= UInt64((start + size - dataAt) / elementSize) else {
            return "attribute '\(name)' of the root group declares \(elements) variable-length elements, more than its message holds (damaged file?)"
        }
        for e in 0..<Int(elements) {
            let at = dataAt + e * elementSize
            guard let length = file.uint(at, 4), let address = file.uint(at + 4, o), let index = file.uint(at + 4 + o, 4) else { return nil }
            if length == 0 && (address == 0 || index == 0) { continue }  // an empty or null string
            guard address < UInt64(Int.max), let objects = heaps[Int(address)] else { continue }  // libhdf5 rejects a non-collection
            guard let objectSize = objects[index] else {
                return "attribute '\(name)' of the root group refers to global heap object \(index) at byte \(address), which the collection does not hold (damaged file?)"
            }
            // libhdf5 allocates length x the base type's size, then copies the whole object
            // into it: the two must agree exactly (a shorter length overflowed the buffer,
            // a longer one allocated gigabytes; both found by fuzzing).
            let (needed, overflow) = length.multipliedReportingOverflow(by: max(1, baseSize))
            if overflow || needed != objectSize {
                return "attribute '\(name)' of the root group declares \(length) elements of \(baseSize) bytes in global heap object \(index), which holds \(objectSize) bytes (damaged file?)"
            }
        }
        return nil
    }
}
