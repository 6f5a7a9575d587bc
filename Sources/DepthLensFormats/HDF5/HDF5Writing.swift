import CHDF5
import DepthLensModel
import Foundation

extension HDF5Group {
    /// Writes a float32 dataset `name` of the given shape.
    public func write(_ values: [Float], shape: [Int], as name: String) throws {
        try write(values, shape: shape, name: name, type: dl_H5T_NATIVE_FLOAT())
    }

    /// Writes an int64 dataset `name` of the given shape.
    public func write(_ values: [Int64], shape: [Int], as name: String) throws {
        try write(values, shape: shape, name: name, type: dl_H5T_NATIVE_INT64())
    }

    private func write<T>(_ values: [T], shape: [Int], name: String, type: hid_t) throws {
        guard shape.reduce(1, *) == values.count else {
            throw error("shape \(shape) does not hold \(values.count) values", at: childPath(name))
        }
        try HDF5Library.locked {
            let dims = shape.map { hsize_t($0) }
            let space = H5Screate_simple(Int32(dims.count), dims, nil)
            guard space >= 0 else { throw libraryError("cannot create dataspace", at: childPath(name)) }
            defer { H5Sclose(space) }
            let dataset = H5Dcreate2(handle.id, name, type, space, dl_H5P_DEFAULT(), dl_H5P_DEFAULT(), dl_H5P_DEFAULT())
            guard dataset >= 0 else { throw libraryError("cannot create dataset", at: childPath(name)) }
            defer { H5Dclose(dataset) }
            let status = values.withUnsafeBytes {
                H5Dwrite(dataset, type, dl_H5S_ALL(), dl_H5S_ALL(), dl_H5P_DEFAULT(), $0.baseAddress)
            }
            guard status >= 0 else { throw libraryError("cannot write dataset", at: childPath(name)) }
        }
    }
}

extension HDF5Object {
    /// Sets a UTF-8 variable-length string attribute (the form h5py writes for `str`).
    public func setAttribute(_ name: String, string value: String) throws {
        try HDF5Library.locked {
            let type = H5Tcopy(dl_H5T_C_S1())
            defer { H5Tclose(type) }
            H5Tset_size(type, dl_H5T_VARIABLE())
            H5Tset_cset(type, H5T_CSET_UTF8)
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(handle.id, name, type, space, dl_H5P_DEFAULT(), dl_H5P_DEFAULT())
            guard attr >= 0 else { throw libraryError("cannot create attribute", at: "\(path)@\(name)") }
            defer { H5Aclose(attr) }
            let status = value.withCString { cString -> herr_t in
                var pointer: UnsafePointer<CChar>? = cString
                return H5Awrite(attr, type, &pointer)
            }
            guard status >= 0 else { throw libraryError("cannot write attribute", at: "\(path)@\(name)") }
        }
    }

    /// Sets a scalar int64 attribute.
    public func setAttribute(_ name: String, integer value: Int64) throws {
        try HDF5Library.locked {
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(handle.id, name, dl_H5T_NATIVE_INT64(), space, dl_H5P_DEFAULT(), dl_H5P_DEFAULT())
            guard attr >= 0 else { throw libraryError("cannot create attribute", at: "\(path)@\(name)") }
            defer { H5Aclose(attr) }
            var v = value
            guard H5Awrite(attr, dl_H5T_NATIVE_INT64(), &v) >= 0 else {
                throw libraryError("cannot write attribute", at: "\(path)@\(name)")
            }
        }
    }
}
