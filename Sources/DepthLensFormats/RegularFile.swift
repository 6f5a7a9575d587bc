import Foundation

/// What a path that should be a regular file is instead, in the words of a one-line error.
///
/// Readers call it before opening: a named pipe would block the open until a writer comes
/// (forever, for a file given by mistake), a folder or device is no checkpoint or data set,
/// and a symbolic link loop would otherwise be reported as a missing file.
public enum RegularFile {
    /// Nil for a regular file (after following symbolic links) and for a path that does
    /// not exist (the reader then reports it missing); otherwise what the path is.
    public static func problem(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ELOOP ? "is a symbolic link loop (too many levels of symbolic links)" : nil
        }
        let kinds: [(mode_t, String)] = [(S_IFIFO, "is a named pipe (FIFO)"), (S_IFDIR, "is a folder"), (S_IFCHR, "is a character device"),
                                         (S_IFBLK, "is a block device"), (S_IFSOCK, "is a socket")]
        let kind = info.st_mode & S_IFMT
        guard kind != S_IFREG else { return nil }
        return kinds.first { $0.0 == kind }?.1 ?? "is not a regular file"
    }
}
