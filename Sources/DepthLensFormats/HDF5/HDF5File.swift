import CHDF5
import DepthLensModel
import Foundation


/// An open libhdf5 identifier, closed when the last reference goes away (opaque to users).
package final class HDF5Handle: @unchecked Sendable {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }

    deinit { HDF5Library.locked { _ = close(id) } }
}

/// An HDF5 file opened read-only, or created for writing.
///
/// Every libhdf5 call goes through one lock, and every failure becomes an
/// ``HDF5Error`` naming this file and the object path.
package final class HDF5File: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    let handle: HDF5Handle

    private init(path: String, handle: HDF5Handle) {
        self.path = path
        self.handle = handle
    }

    /// Opens an existing file read-only.
    /// - Throws: ``HDF5Error`` when the file is missing, unreadable, empty, not HDF5, or
    ///   damaged beyond what libhdf5 can open.
    public static func open(_ path: String) throws -> HDF5File {
        let fail = { (message: String) in HDF5Error(file: path, object: "/", message: message) }
        // A named pipe would block the open below; a link loop would read as "no such file".
        if let problem = RegularFile.problem(path), problem != "is a folder" { throw fail("\(problem), not an HDF5 file") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw fail("no such file")
        }
        guard !isDirectory.boolValue else { throw fail("is a directory, not an HDF5 file") }
        guard FileManager.default.isReadableFile(atPath: path) else { throw fail("file is not readable (permissions)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size > 0 else { throw fail("file is empty (0 bytes), not an HDF5 file") }
        if let problem = HDF5Precheck.problem(path: path, fileSize: size) { throw fail(problem) }
        HDF5CrashNote.reading(path)
        return try HDF5Library.locked {
            let isHDF5 = H5Fis_hdf5(path)
            if isHDF5 == 0 {
                throw fail("not an HDF5 file (no HDF5 signature found)")
            }
            if isHDF5 < 0 {
                throw fail("cannot be read as HDF5: \(HDF5Library.lastErrorMessage() ?? "unknown error")")
            }
            let id = H5Fopen(path, dl_H5F_ACC_RDONLY(), dl_H5P_DEFAULT())
            guard id >= 0 else {
                throw fail("cannot open (truncated or damaged HDF5 file?): \(HDF5Library.lastErrorMessage() ?? "unknown error")")
            }
            return HDF5File(path: path, handle: HDF5Handle(id, close: H5Fclose))
        }
    }

    /// Creates a file for writing, replacing any file at `path`.
    public static func create(_ path: String) throws -> HDF5File {
        try HDF5Library.locked {
            let id = H5Fcreate(path, dl_H5F_ACC_TRUNC(), dl_H5P_DEFAULT(), dl_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Error(file: path, object: "/", message:
                    "cannot create file: \(HDF5Library.lastErrorMessage() ?? "unknown error")")
            }
            return HDF5File(path: path, handle: HDF5Handle(id, close: H5Fclose))
        }
    }

    /// The root group `/`.
    public var root: HDF5Group {
        get throws { try HDF5Group.open(in: self, at: "/") }
    }

    /// Writes buffered data to disk. Closing happens when the last reference goes away.
    public func flush() throws {
        try HDF5Library.locked {
            guard H5Fflush(handle.id, H5F_SCOPE_GLOBAL) >= 0 else {
                throw HDF5Error(file: path, object: "/", message: "cannot flush: \(HDF5Library.lastErrorMessage() ?? "unknown error")")
            }
        }
    }
}

/// What kind of object a group member is.
package enum HDF5ObjectKind: Equatable, Sendable {
    case group, dataset, other
}

/// Anything in a file that has a path and attributes: groups and datasets.
package protocol HDF5Object {
    /// The file the object lives in.
    var file: HDF5File { get }
    /// The object's absolute path inside the file, such as `/tensors/fc.weight`.
    var path: String { get }
    var handle: HDF5Handle { get }
}

extension HDF5Object {
    func error(_ message: String, at object: String? = nil) -> HDF5Error {
        HDF5Error(file: file.path, object: object ?? path, message: message)
    }

    func libraryError(_ what: String, at object: String? = nil) -> HDF5Error {
        error("\(what): \(HDF5Library.lastErrorMessage() ?? "unknown error")", at: object)
    }

    /// Reads a name through libhdf5's two-call protocol: `get(nil, 0)` returns the length,
    /// `get(buffer, size)` fills it. Call holding the lock.
    func readName(_ what: String, _ get: (UnsafeMutablePointer<CChar>?, Int) -> Int) throws -> String {
        let length = get(nil, 0)
        guard length >= 0 else { throw libraryError("cannot read the name of \(what)") }
        var buffer = [CChar](repeating: 0, count: length + 1)
        _ = get(&buffer, buffer.count)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func childPath(_ name: String) -> String {
        path == "/" ? "/\(name)" : "\(path)/\(name)"
    }
}

/// A group: a folder of named datasets and groups.
package struct HDF5Group: HDF5Object, @unchecked Sendable {
    public let file: HDF5File
    public let path: String
    public let handle: HDF5Handle

    static func open(in file: HDF5File, at path: String) throws -> HDF5Group {
        try HDF5Library.locked {
            let id = H5Gopen2(file.handle.id, path, dl_H5P_DEFAULT())
            guard id >= 0 else {
                throw HDF5Error(file: file.path, object: path, message:
                    "cannot open group: \(HDF5Library.lastErrorMessage() ?? "unknown error")")
            }
            return HDF5Group(file: file, path: path, handle: HDF5Handle(id, close: H5Gclose))
        }
    }

    /// Names of the group's members, in libhdf5's name order.
    public func memberNames() throws -> [String] {
        try HDF5Library.locked {
            var info = H5G_info_t()
            guard H5Gget_info(handle.id, &info) >= 0 else { throw libraryError("cannot list group") }
            return try (0..<info.nlinks).map { index in
                try readName("member \(index)") { buffer, size in
                    Int(H5Lget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, buffer, size, dl_H5P_DEFAULT()))
                }
            }
        }
    }

    /// Whether the group has a member of that name (a single path component).
    public func contains(_ name: String) -> Bool {
        guard !name.isEmpty, !name.contains("/") else { return false }
        return HDF5Library.locked {
            let exists = H5Lexists(handle.id, name, dl_H5P_DEFAULT()) > 0
            if !exists { H5Eclear2(dl_H5E_DEFAULT()) }
            return exists
        }
    }

    /// The kind of the member `name`.
    /// - Throws: ``HDF5Error`` when there is no such member or it cannot be opened.
    public func kind(of name: String) throws -> HDF5ObjectKind {
        guard contains(name) else { throw error("no such object", at: childPath(name)) }
        return try HDF5Library.locked {
            let id = H5Oopen(handle.id, name, dl_H5P_DEFAULT())
            guard id >= 0 else { throw libraryError("cannot open object", at: childPath(name)) }
            defer { H5Oclose(id) }
            switch H5Iget_type(id) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return .other
            }
        }
    }

    /// Opens the member group `name`.
    public func group(_ name: String) throws -> HDF5Group {
        guard try kind(of: name) == .group else { throw error("is not a group", at: childPath(name)) }
        return try HDF5Group.open(in: file, at: childPath(name))
    }

    /// Opens the member dataset `name`.
    public func dataset(_ name: String) throws -> HDF5Dataset {
        guard try kind(of: name) == .dataset else { throw error("is not a dataset", at: childPath(name)) }
        return try HDF5Dataset.open(in: self, name: name)
    }

    /// Opens the dataset at a relative path such as `train/images`, through its groups.
    public func dataset(atPath path: String) throws -> HDF5Dataset {
        let parts = path.split(separator: "/").map(String.init)
        guard let last = parts.last else { throw error("empty dataset path") }
        var group = self
        for part in parts.dropLast() { group = try group.group(part) }
        return try group.dataset(last)
    }

    /// Whether a relative path such as `train/labels` names an existing object.
    public func contains(path: String) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        guard let last = parts.last else { return false }
        var group = self
        for part in parts.dropLast() {
            guard let next = try? group.group(part) else { return false }
            group = next
        }
        return group.contains(last)
    }

    /// Creates a member group.
    @discardableResult
    public func createGroup(_ name: String) throws -> HDF5Group {
        try HDF5Library.locked {
            let id = H5Gcreate2(handle.id, name, dl_H5P_DEFAULT(), dl_H5P_DEFAULT(), dl_H5P_DEFAULT())
            guard id >= 0 else { throw libraryError("cannot create group", at: childPath(name)) }
            return HDF5Group(file: file, path: childPath(name), handle: HDF5Handle(id, close: H5Gclose))
        }
    }
}
