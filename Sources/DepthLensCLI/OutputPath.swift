import Foundation

/// Checks on where results go, with one-line messages instead of Foundation's.
enum OutputPath {
    /// Refuses an output folder one of whose existing ancestors (or the path itself) is
    /// not a folder: `-o results.csv/run` under a regular file.
    static func requireFolders(above path: String) throws {
        var current = URL(fileURLWithPath: path).standardizedFileURL
        while current.path != "/" {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: current.path, isDirectory: &isFolder) {
                guard isFolder.boolValue else {
                    let what = current.path == URL(fileURLWithPath: path).standardizedFileURL.path ? "it is" : "\(current.path) is"
                    throw CLIError("\(path): cannot use it as the output folder: \(what) a file, not a folder")
                }
                return
            }
            current = current.deletingLastPathComponent()
        }
    }
}
