import CHDF5
import DepthLensModel
import Foundation

/// A failure in the HDF5 layer, naming the file and the object inside it.
public struct HDF5Error: Error, CustomStringConvertible, Equatable, Sendable {
    /// Path of the HDF5 file on disk.
    public var file: String
    /// Path of the object inside the file (`/` for the file itself).
    public var object: String
    /// What went wrong, in words.
    public var message: String

    public init(file: String, object: String, message: String) {
        self.file = file
        self.object = object
        self.message = message
    }

    public var description: String {
        object.isEmpty || object == "/" ? "\(file): \(message)" : "\(file): \(object): \(message)"
    }
}

/// Serialises every libhdf5 call: the Debian build is not thread-safe.
enum HDF5Library {
    private static let lock = NSRecursiveLock()
    nonisolated(unsafe) private static var initialised = false

    /// Runs `body` holding the library lock; the first call turns libhdf5's own error
    /// printing off, since every failure is reported as a Swift error instead.
    static func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if !initialised {
            H5open()
            H5Eset_auto2(dl_H5E_DEFAULT(), nil, nil)
            initialised = true
        }
        HDF5CrashNote.inLibrary.store(true, ordering: .relaxed)
        defer { HDF5CrashNote.inLibrary.store(false, ordering: .relaxed) }
        return try body()
    }

    /// The innermost message on libhdf5's error stack, cleared afterwards.
    static func lastErrorMessage() -> String? {
        var messages: [String] = []
        withUnsafeMutablePointer(to: &messages) { pointer in
            _ = H5Ewalk2(dl_H5E_DEFAULT(), H5E_WALK_DOWNWARD, { _, description, client in
                guard let description, let client else { return 0 }
                let list = client.assumingMemoryBound(to: [String].self)
                if let text = description.pointee.desc { list.pointee.append(String(cString: text)) }
                return 0
            }, pointer)
        }
        H5Eclear2(dl_H5E_DEFAULT())
        // Walking downward, the last entry is the lowest-level cause; the first says what
        // the API call was doing. Both help.
        guard let first = messages.first else { return nil }
        if let last = messages.last, last != first { return "\(first) (\(last))" }
        return first
    }
}
