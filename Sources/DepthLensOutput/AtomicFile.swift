import DepthLensAnalysis
import DepthLensFormats
import Foundation

/// Writes a file so that a reader, or a run killed midway, never sees it half-written:
/// the content goes to a temporary file beside the target, which is renamed over the
/// target only once complete.
package enum AtomicFile {
    /// Writes `data` to `path` atomically.
    /// - Throws: ``OutputError`` naming the path when the folder is missing or not writable.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { temporary in
            try data.write(to: URL(fileURLWithPath: temporary))
        }
    }

    /// Calls `produce` with a temporary path to fill, then renames it to `path`. On any
    /// error the temporary file is removed and `path` is left untouched.
    public static func write(to path: String, _ produce: (String) throws -> Void) throws {
        let target = URL(fileURLWithPath: path)
        let folder = target.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw OutputError(path: path, message: "the folder \(folder) does not exist")
        }
        let temporary = target.deletingLastPathComponent()
            .appendingPathComponent(".\(target.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)").path
        do {
            try produce(temporary)
            // On disk before it gets the final name, so even a power cut cannot leave a
            // file under that name whose content was never written.
            let descriptor = open(temporary, O_RDONLY)
            if descriptor >= 0 {
                fsync(descriptor)
                close(descriptor)
            }
            if rename(temporary, path) != 0 {
                throw OutputError(path: path, message: "cannot move the finished file into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if error is OutputError { throw error }
            throw OutputError(path: path, message: "cannot write: \(SystemErrorText.describe(error))")
        }
    }
}

/// A result file that could not be written.
package struct OutputError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String

    public var description: String { "\(path): \(message)" }
}
