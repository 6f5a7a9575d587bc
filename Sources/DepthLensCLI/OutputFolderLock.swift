import DepthLens
import Foundation

/// The output folder a command writes, locked (``FolderLock``) from the moment
/// `AnalysisOptions.folder(default:)` creates it until the process exits: the lock file is
/// removed at exit (`atexit`, which runs on success, on an error and after an interrupted
/// run's message); a process killed outright leaves a stale lock file, which the kernel has
/// already unlocked and the next run takes over.
///
/// `predict -o` takes no lock: it writes one file, atomically, under a temporary name of its
/// own (``AtomicFile``), so two runs can at worst replace each other's complete file.
enum OutputFolderLock {
    nonisolated(unsafe) private static var held: [String: FolderLock] = [:]
    private static let mutex = NSLock()
    private static let releaseAtExit: Void = { atexit { OutputFolderLock.releaseAll() } }()

    /// Locks `folder` for this process (once; again harmlessly).
    /// - Throws: ``CLIError`` when another run holds it, naming its pid and what to do.
    static func take(_ folder: String, command: String, quiet: Bool) throws {
        let key = URL(fileURLWithPath: folder).standardizedFileURL.path
        mutex.lock()
        defer { mutex.unlock() }
        guard held[key] == nil else { return }
        _ = releaseAtExit
        let lock: FolderLock
        do {
            lock = try FolderLock(folder: folder, command: command)
        } catch let error as FolderLockError {
            if case .held = error.reason {
                throw CLIError("\(error.folder): \(error.message); wait for it to finish, or choose another output folder with -o")
            }
            throw CLIError(error.description)
        }
        held[key] = lock
        if let previous = lock.previousHolder, !quiet {
            FileHandle.standardError.write(Data("depthlens: \(folder): a previous run (\(previous)) ended without cleaning up; its lock file is taken over\n".utf8))
        }
    }

    /// Whether this process holds the lock of `folder`.
    static func holds(_ folder: String) -> Bool {
        mutex.lock()
        defer { mutex.unlock() }
        return held[URL(fileURLWithPath: folder).standardizedFileURL.path] != nil
    }

    /// Removes the lock files and releases the locks.
    static func releaseAll() {
        mutex.lock()
        defer { mutex.unlock() }
        for lock in held.values { lock.release() }
        held = [:]
    }
}
