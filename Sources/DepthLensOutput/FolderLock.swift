import Foundation

/// Exclusive use of an output folder by one run: the CSV files, plots and progress journal
/// it writes there are its own until it releases the lock.
///
/// The lock is `<folder>/.depthlens.lock`, held with `flock(LOCK_EX | LOCK_NB)` and holding
/// the holder's pid, what it runs and when it started. The kernel drops an `flock` when its
/// process ends however it ends, so a lock file left behind by a killed run is stale by
/// definition: the next run takes it over (and reports the run that left it,
/// ``previousHolder``). A run that finishes removes the file while still holding the lock.
///
/// It lives here, beside ``AtomicFile``, because it guards the folder as a whole: the
/// result files this target writes and the journal the analyses keep there. The library
/// takes no lock on its own; whoever owns the run (the command line) takes it before
/// touching the folder.
package final class FolderLock: @unchecked Sendable {
    /// The lock file's name inside the folder.
    package static let fileName = ".depthlens.lock"

    /// What a lock file says about the run holding it (fields it lacks are nil).
    package struct Holder: Equatable, Sendable, CustomStringConvertible {
        package var pid: Int32?
        package var command: String?
        package var started: String?

        package init(pid: Int32?, command: String?, started: String?) {
            self.pid = pid
            self.command = command
            self.started = started
        }

        /// Parses the `key value` lines of a lock file; nil when it holds none.
        init?(text: String) {
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            guard !fields.isEmpty else { return nil }
            self.init(pid: fields["pid"].flatMap { Int32($0) }, command: fields["command"], started: fields["started"])
        }

        var text: String {
            "pid \(pid.map(String.init) ?? "?")\ncommand \(command ?? "?")\nstarted \(started ?? "?")\n"
        }

        /// `pid 1234, depthlens sample, started 2026-11-29T10:00:00Z`.
        package var description: String {
            (["pid \(pid.map(String.init) ?? "unknown")"] + [command, started.map { "started \($0)" }].compactMap { $0 })
                .joined(separator: ", ")
        }
    }

    package let folder: String
    package var path: String { Self.path(in: folder) }
    /// The run named by a stale lock file this run took over: one that ended without
    /// removing it (killed, or crashed). Nil when there was no such file.
    package let previousHolder: Holder?
    private var descriptor: Int32

    package static func path(in folder: String) -> String {
        URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
    }

    /// Takes the lock of `folder` (which must exist) for `command`, or fails at once.
    /// - Throws: ``FolderLockError``: `.held` when another live process holds it (the
    ///   folder is then left exactly as it was), `.other` when the lock file cannot be used.
    package init(folder: String, command: String) throws {
        self.folder = folder
        let path = Self.path(in: folder)
        // A finishing run removes its lock file while holding it; a file opened just before
        // that is no longer the folder's lock, so the lock is taken again on the new file.
        for _ in 0..<16 {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw FolderLockError(folder: folder, message: "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                let holder = Holder(text: Self.read(fd))
                close(fd)
                if code == EWOULDBLOCK {
                    throw FolderLockError(folder: folder, message: "the folder is in use by another run (\(holder?.description ?? "pid unknown"))",
                                          reason: .held(holder))
                }
                throw FolderLockError(folder: folder, message: "cannot lock \(path): \(String(cString: strerror(code)))")
            }
            guard Self.isCurrent(fd, path: path) else {
                close(fd)
                continue
            }
            previousHolder = Holder(text: Self.read(fd))
            let started = ISO8601DateFormatter().string(from: Date())
            let text = Holder(pid: getpid(), command: command, started: started).text
            let written = ftruncate(fd, 0) == 0 ? text.utf8CString.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress, $0.count - 1, 0) } : -1
            guard written == text.utf8.count else {
                let message = String(cString: strerror(errno))
                unlink(path)
                close(fd)
                throw FolderLockError(folder: folder, message: "cannot write the lock file \(path): \(message)")
            }
            descriptor = fd
            return
        }
        throw FolderLockError(folder: folder, message: "cannot lock \(path): the file keeps being replaced")
    }

    deinit { release() }

    /// Removes the lock file and releases the lock (again harmlessly).
    package func release() {
        guard descriptor >= 0 else { return }
        if Self.isCurrent(descriptor, path: path) { unlink(path) }
        close(descriptor)
        descriptor = -1
    }

    /// Whether `fd` is still the file at `path` (not removed or replaced since it was opened).
    private static func isCurrent(_ fd: Int32, path: String) -> Bool {
        var opened = stat(), current = stat()
        guard fstat(fd, &opened) == 0, stat(path, &current) == 0 else { return false }
        return opened.st_dev == current.st_dev && opened.st_ino == current.st_ino
    }

    /// The start of the file (a lock file is a few short lines).
    private static func read(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = pread(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }
}

/// An output folder that cannot be locked.
package struct FolderLockError: Error, CustomStringConvertible, Equatable {
    package enum Reason: Equatable, Sendable {
        /// Another live run holds the lock (what its lock file says about it, if anything).
        case held(FolderLock.Holder?)
        /// The lock file cannot be created, locked or written.
        case other
    }

    package var folder: String
    /// What is wrong, without the remedy.
    package var message: String
    package var reason: Reason = .other

    /// What to do about it, in the library's terms (a front end names its own settings).
    package var remedy: String? {
        if case .held = reason { return "wait for it to finish, or write to another folder" }
        return nil
    }

    package var description: String { "\(folder): \(message)" + (remedy.map { "; \($0)" } ?? "") }
}
