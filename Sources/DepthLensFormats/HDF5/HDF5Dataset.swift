import CHDF5
import DepthLensModel
import Foundation

/// The element type of a dataset or attribute, as stored in the file.
package enum HDF5ElementType: Equatable, Sendable, CustomStringConvertible {
    case float(bits: Int)
    case signedInteger(bits: Int)
    case unsignedInteger(bits: Int)
    case string
    case other(String)

    public var description: String {
        switch self {
        case .float(let bits): return "float\(bits)"
        case .signedInteger(let bits): return "int\(bits)"
        case .unsignedInteger(let bits): return "uint\(bits)"
        case .string: return "string"
        case .other(let name): return name
        }
    }

    public var isNumeric: Bool {
        switch self {
        case .float, .signedInteger, .unsignedInteger: return true
        default: return false
        }
    }

    /// Reads the type of an open libhdf5 datatype identifier. Call holding the lock.
    static func of(type: hid_t) -> HDF5ElementType {
        let bits = Int(H5Tget_size(type)) * 8
        switch H5Tget_class(type) {
        case H5T_FLOAT: return .float(bits: bits)
        case H5T_INTEGER: return H5Tget_sign(type) == H5T_SGN_NONE ? .unsignedInteger(bits: bits) : .signedInteger(bits: bits)
        case H5T_STRING: return .string
        case H5T_COMPOUND: return .other("compound")
        case H5T_ENUM: return .other("enum")
        case H5T_ARRAY: return .other("array")
        case H5T_VLEN: return .other("variable-length sequence")
        case H5T_OPAQUE: return .other("opaque")
        case H5T_REFERENCE: return .other("reference")
        case H5T_BITFIELD: return .other("bitfield")
        default: return .other("unknown type")
        }
    }
}

/// The most bytes one read may allocate: a declared size beyond this is an error, not a
/// crash (a damaged or hostile file can declare any extent).
package let hdf5MaximumReadBytes: Int = {
    let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
    return max(1 << 30, physical / 2)
}()

/// A dataset: an n-dimensional array of one element type.
package struct HDF5Dataset: HDF5Object, @unchecked Sendable {
    public let file: HDF5File
    public let path: String
    public let handle: HDF5Handle
    /// Extent of each dimension; empty for a scalar dataset.
    public let shape: [Int]
    /// The stored element type.
    public let elementType: HDF5ElementType

    /// Number of elements (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }

    static func open(in group: HDF5Group, name: String) throws -> HDF5Dataset {
        let path = group.childPath(name)
        return try HDF5Library.locked {
            let id = H5Dopen2(group.handle.id, name, dl_H5P_DEFAULT())
            guard id >= 0 else { throw group.libraryError("cannot open dataset", at: path) }
            let handle = HDF5Handle(id, close: H5Dclose)
            let type = H5Dget_type(id)
            guard type >= 0 else { throw group.libraryError("cannot read the element type", at: path) }
            defer { H5Tclose(type) }
            let space = H5Dget_space(id)
            guard space >= 0 else { throw group.libraryError("cannot read the dataspace", at: path) }
            defer { H5Sclose(space) }
            let shape = try readShape(space: space) { group.error($0, at: path) }
            return HDF5Dataset(file: group.file, path: path, handle: handle, shape: shape,
                               elementType: HDF5ElementType.of(type: type))
        }
    }

    /// Reads every element converted to `Float` (from any float or integer type).
    public func readFloats() throws -> [Float] {
        try read(as: Float.self, memoryType: dl_H5T_NATIVE_FLOAT())
    }

    /// Reads every element converted to `Double`.
    public func readDoubles() throws -> [Double] {
        try read(as: Double.self, memoryType: dl_H5T_NATIVE_DOUBLE())
    }

    /// Reads every element of an integer dataset as `Int64`.
    public func readIntegers() throws -> [Int64] {
        switch elementType {
        case .signedInteger, .unsignedInteger: break
        default: throw error("expected an integer dataset, found \(elementType)")
        }
        return try read(as: Int64.self, memoryType: dl_H5T_NATIVE_INT64())
    }

    /// Reads rows `rows` of the first dimension converted to `Double`.
    public func readDoubles(rows: Range<Int>) throws -> [Double] {
        try readRows(rows, as: Double.self, memoryType: dl_H5T_NATIVE_DOUBLE())
    }

    /// Rejects a declared extent that the file cannot hold: more bytes than deflate's
    /// best ratio (1032:1) could expand the whole file into. Such a dataset is damaged or
    /// crafted (chunks never written read as fill values), and reading it would allocate
    /// memory for data that is not there.
    public func checkDeclaredSizeFitsFile() throws {
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
        let elementBytes: Int
        switch elementType {
        case .float(let bits), .signedInteger(let bits), .unsignedInteger(let bits): elementBytes = max(1, bits / 8)
        default: elementBytes = 1
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: elementBytes)
        let limit = fileSize.multipliedReportingOverflow(by: 1032).partialValue + (1 << 20)
        guard !overflow, bytes <= limit else {
            throw error("declares shape \(shape) (\(overflow ? "more than \(Int.max)" : "\(bytes)") bytes of \(elementType)), far more than the \(fileSize)-byte file can hold; the file is damaged or its extent is wrong")
        }
    }

    /// Reads rows `rows` of the first dimension (for example images `start..<end` of an
    /// `(N, C, H, W)` array) converted to `Float`, without reading the rest.
    public func readFloats(rows: Range<Int>) throws -> [Float] {
        try readRows(rows, as: Float.self, memoryType: dl_H5T_NATIVE_FLOAT())
    }

    private func readRows<T: Numeric>(_ rows: Range<Int>, as: T.Type, memoryType: hid_t) throws -> [T] {
        guard let first = shape.first else { throw error("cannot read rows of a scalar dataset") }
        guard rows.lowerBound >= 0, rows.upperBound <= first else {
            throw error("rows \(rows.lowerBound)..<\(rows.upperBound) are outside the first dimension (\(first))")
        }
        try requireNumeric()
        let perRow = shape.dropFirst().reduce(1, *)
        let total = rows.count * perRow
        try checkAllocation(elements: total, elementSize: MemoryLayout<T>.size)
        if total == 0 { return [] }
        try checkStorage()
        return try HDF5Library.locked {
            let fileSpace = H5Dget_space(handle.id)
            guard fileSpace >= 0 else { throw libraryError("cannot read the dataspace") }
            defer { H5Sclose(fileSpace) }
            var start = [hsize_t](repeating: 0, count: shape.count)
            var count = shape.map { hsize_t($0) }
            start[0] = hsize_t(rows.lowerBound)
            count[0] = hsize_t(rows.count)
            guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, count, nil) >= 0 else {
                throw libraryError("cannot select rows")
            }
            let memorySpace = H5Screate_simple(Int32(shape.count), count, nil)
            defer { H5Sclose(memorySpace) }
            var values = [T](repeating: 0, count: total)
            let status = values.withUnsafeMutableBytes {
                H5Dread(handle.id, memoryType, memorySpace, fileSpace, dl_H5P_DEFAULT(), $0.baseAddress)
            }
            guard status >= 0 else { throw libraryError("cannot read rows \(rows.lowerBound)..<\(rows.upperBound) (truncated file?)") }
            return values
        }
    }

    /// Checks the stored layout against the file before libhdf5 reads through it: a
    /// contiguous dataset's data must lie inside the file and hold every element, and a
    /// chunked one's chunk must be of a size the file could hold. libhdf5 1.10 trusts
    /// these fields (a crafted layout made it copy from a null pointer; found by fuzzing).
    func checkStorage() throws {
        let fileSize = UInt64((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
        let problem = HDF5Library.locked { () -> String? in
            let plist = H5Dget_create_plist(handle.id)
            guard plist >= 0 else { return "cannot read the storage layout: \(HDF5Library.lastErrorMessage() ?? "unknown error")" }
            defer { H5Pclose(plist) }
            let type = H5Dget_type(handle.id)
            let elementSize = type >= 0 ? UInt64(H5Tget_size(type)) : 0
            if type >= 0 { H5Tclose(type) }
            let declared = UInt64(count).multipliedReportingOverflow(by: elementSize)
            switch H5Pget_layout(plist) {
            case H5D_CONTIGUOUS:
                let offset = UInt64(H5Dget_offset(handle.id))
                let stored = UInt64(H5Dget_storage_size(handle.id))
                if offset == UInt64(haddr_t.max) { return nil }  // never written: reads as fill values
                let (end, overflow) = offset.addingReportingOverflow(stored)
                if overflow || end > fileSize {
                    return "its data (\(stored) bytes at byte \(offset)) lies beyond the end of the \(fileSize)-byte file (truncated or damaged?)"
                }
                if declared.overflow || stored < declared.partialValue {
                    return "stores \(stored) bytes for shape \(shape) of \(elementSize)-byte elements (damaged file?)"
                }
            case H5D_COMPACT:
                let stored = UInt64(H5Dget_storage_size(handle.id))
                if declared.overflow || stored < declared.partialValue {
                    return "stores \(stored) bytes (compact) for shape \(shape) of \(elementSize)-byte elements (damaged file?)"
                }
            case H5D_CHUNKED:
                var dims = [hsize_t](repeating: 0, count: 32)
                let rank = H5Pget_chunk(plist, 32, &dims)
                guard rank > 0 else { return "cannot read the chunk shape (damaged file?)" }
                var bytes = elementSize
                for d in dims.prefix(Int(rank)) {
                    let (product, overflow) = bytes.multipliedReportingOverflow(by: UInt64(d))
                    guard !overflow else { return "declares chunks of \(Array(dims.prefix(Int(rank)))) elements, too large (damaged file?)" }
                    bytes = product
                }
                if bytes > UInt64(hdf5MaximumReadBytes) || bytes > fileSize &* 1032 &+ (1 << 20) {
                    return "declares chunks of \(Array(dims.prefix(Int(rank)))) elements (\(bytes) bytes), more than the \(fileSize)-byte file can hold (damaged file?)"
                }
                if let missing = Self.unavailableFilter(plist) { return missing }
            default:
                break
            }
            return nil
        }
        if let problem { throw error(problem) }
    }

    private func requireNumeric() throws {
        guard elementType.isNumeric else { throw error("expected numbers, found \(elementType) elements") }
    }

    private func checkAllocation(elements: Int, elementSize: Int) throws {
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: elementSize)
        guard !overflow, bytes <= hdf5MaximumReadBytes else {
            throw error("declared size \(shape) is too large to read (\(overflow ? "overflows" : "\(bytes) bytes"); limit \(hdf5MaximumReadBytes) bytes)")
        }
    }

    private func read<T: Numeric>(as: T.Type, memoryType: hid_t) throws -> [T] {
        try requireNumeric()
        try checkAllocation(elements: count, elementSize: MemoryLayout<T>.size)
        if count == 0 { return [] }
        try checkStorage()
        return try HDF5Library.locked {
            var values = [T](repeating: 0, count: count)
            let status = values.withUnsafeMutableBytes {
                H5Dread(handle.id, memoryType, dl_H5S_ALL(), dl_H5S_ALL(), dl_H5P_DEFAULT(), $0.baseAddress)
            }
            guard status >= 0 else { throw libraryError("cannot read data (truncated or damaged file?)") }
            return values
        }
    }
}

/// Reads a simple dataspace's extent, rejecting extents that cannot be real. Call holding the lock.
func readShape(space: hid_t, fail: (String) -> HDF5Error) throws -> [Int] {
    let rank = H5Sget_simple_extent_ndims(space)
    guard rank >= 0 else { throw fail("cannot read the rank: \(HDF5Library.lastErrorMessage() ?? "unknown error")") }
    if rank == 0 {
        // Scalar or null dataspace.
        return H5Sget_simple_extent_type(space) == H5S_NULL ? [0] : []
    }
    var dims = [hsize_t](repeating: 0, count: Int(rank))
    guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else {
        throw fail("cannot read the extent: \(HDF5Library.lastErrorMessage() ?? "unknown error")")
    }
    var shape: [Int] = []
    var total = 1
    for d in dims {
        guard d <= hsize_t(Int.max) else { throw fail("declared extent \(dims) is too large") }
        shape.append(Int(d))
        let (product, overflow) = total.multipliedReportingOverflow(by: Int(d))
        guard !overflow else { throw fail("declared extent \(dims) is too large (element count overflows)") }
        total = product
    }
    return shape
}

/// Which HDF5 filters this libhdf5 can decode.
package enum HDF5Filters {
    /// h5py's LZF compression: not part of libhdf5 (Debian's lacks it); a plugin found on
    /// `HDF5_PLUGIN_PATH` provides it.
    package static let lzf: Int32 = 32000

    /// Whether filter `id` is available: built in, registered, or a plugin libhdf5 finds.
    package static func isAvailable(_ id: Int32) -> Bool {
        HDF5Library.locked { H5Zfilter_avail(H5Z_filter_t(id)) > 0 }
    }
}

extension HDF5Dataset {
    /// A compression filter of the dataset's pipeline that this libhdf5 cannot decode (h5py's
    /// `lzf`, or a plugin filter such as Blosc), named, so that the user is told the filter
    /// is missing rather than that the file is damaged. Call with the library lock held.
    static func unavailableFilter(_ plist: hid_t) -> String? {
        let count = H5Pget_nfilters(plist)
        guard count > 0 else { return nil }
        for index in 0..<UInt32(count) {
            var flags: UInt32 = 0, elements = 0, config: UInt32 = 0
            var name = [CChar](repeating: 0, count: 128)
            let filter = H5Pget_filter2(plist, index, &flags, &elements, nil, name.count, &name, &config)
            guard filter >= 0, H5Zfilter_avail(filter) <= 0 else { continue }
            let label = String(cString: name).isEmpty ? "an unnamed filter" : "the '\(String(cString: name))' filter"
            return "is compressed with \(label) (HDF5 filter \(filter)), which this libhdf5 cannot decode: the filter is missing, the file is not damaged; rewrite the dataset with gzip or no compression (h5py: compression='gzip')"
        }
        return nil
    }
}
