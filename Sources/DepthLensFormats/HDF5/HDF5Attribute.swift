import CHDF5
import DepthLensModel
import Foundation

/// The value of an attribute: strings or numbers, scalar or array.
package enum HDF5AttributeValue: Equatable, Sendable {
    case strings([String])
    case integers([Int64])
    case floats([Double])

    /// The value as one string, when it is a single string.
    public var string: String? {
        if case .strings(let s) = self, s.count == 1 { return s[0] }
        return nil
    }

    /// The value as one integer, when it is a single integer.
    public var integer: Int64? {
        if case .integers(let v) = self, v.count == 1 { return v[0] }
        return nil
    }

    /// The value as numbers (integers converted), when it is numeric.
    public var numbers: [Double]? {
        switch self {
        case .floats(let v): return v
        case .integers(let v): return v.map(Double.init)
        case .strings: return nil
        }
    }
}

extension HDF5Object {
    /// Names of the object's attributes.
    public func attributeNames() throws -> [String] {
        try HDF5Library.locked {
            var info = H5O_info_t()
            guard H5Oget_info2(handle.id, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else {
                throw libraryError("cannot list attributes")
            }
            return try (0..<info.num_attrs).map { index in
                try readName("attribute \(index)") { buffer, size in
                    Int(H5Aget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, buffer, size, dl_H5P_DEFAULT()))
                }
            }
        }
    }

    /// Whether the object has an attribute of that name.
    public func hasAttribute(_ name: String) -> Bool {
        HDF5Library.locked {
            let exists = H5Aexists(handle.id, name) > 0
            if !exists { H5Eclear2(dl_H5E_DEFAULT()) }
            return exists
        }
    }

    /// Reads the attribute `name`.
    /// - Throws: ``HDF5Error`` naming `object@name` when it is missing or of a type that
    ///   is neither string nor number.
    public func attribute(_ name: String) throws -> HDF5AttributeValue {
        let place = "\(path)@\(name)"
        guard hasAttribute(name) else { throw error("no such attribute", at: place) }
        return try HDF5Library.locked {
            let attr = H5Aopen(handle.id, name, dl_H5P_DEFAULT())
            guard attr >= 0 else { throw libraryError("cannot open attribute", at: place) }
            defer { H5Aclose(attr) }
            let type = H5Aget_type(attr)
            guard type >= 0 else { throw libraryError("cannot read the attribute's type", at: place) }
            defer { H5Tclose(type) }
            let space = H5Aget_space(attr)
            guard space >= 0 else { throw libraryError("cannot read the attribute's dataspace", at: place) }
            defer { H5Sclose(space) }
            let shape = try readShape(space: space) { error($0, at: place) }
            let count = shape.reduce(1, *)
            guard count <= 1 << 24 else { throw error("attribute declares \(count) elements, too many", at: place) }
            switch HDF5ElementType.of(type: type) {
            case .string:
                return .strings(try readStrings(attr: attr, type: type, count: count, place: place))
            case .signedInteger, .unsignedInteger:
                var values = [Int64](repeating: 0, count: count)
                guard H5Aread(attr, dl_H5T_NATIVE_INT64(), &values) >= 0 else { throw libraryError("cannot read attribute", at: place) }
                return .integers(values)
            case .float:
                var values = [Double](repeating: 0, count: count)
                guard H5Aread(attr, dl_H5T_NATIVE_DOUBLE(), &values) >= 0 else { throw libraryError("cannot read attribute", at: place) }
                return .floats(values)
            case let other:
                throw error("attribute has \(other) elements; expected strings or numbers", at: place)
            }
        }
    }

    /// Reads variable-length (as h5py writes `str`) or fixed-length strings. Holds the lock.
    private func readStrings(attr: hid_t, type: hid_t, count: Int, place: String) throws -> [String] {
        let memoryType = H5Tcopy(dl_H5T_C_S1())
        defer { H5Tclose(memoryType) }
        H5Tset_cset(memoryType, H5Tget_cset(type))
        if H5Tis_variable_str(type) > 0 {
            H5Tset_size(memoryType, dl_H5T_VARIABLE())
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attr, memoryType, &pointers) >= 0 else { throw libraryError("cannot read string attribute", at: place) }
            defer { for p in pointers where p != nil { H5free_memory(p) } }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = Int(H5Tget_size(type))
        guard size > 0, size.multipliedReportingOverflow(by: count).partialValue <= 1 << 28 else {
            throw error("string attribute of \(count) x \(size) bytes is too large", at: place)
        }
        H5Tset_size(memoryType, size)
        var bytes = [UInt8](repeating: 0, count: size * count)
        guard H5Aread(attr, memoryType, &bytes) >= 0 else { throw libraryError("cannot read string attribute", at: place) }
        return (0..<count).map { i in
            let slice = bytes[(i * size)..<((i + 1) * size)]
            let end = slice.firstIndex(of: 0) ?? slice.endIndex
            return String(decoding: slice[slice.startIndex..<end], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }
    }
}
