import Foundation

/// An I/O error in a few words, instead of Foundation's multi-line `Error Domain=...` text:
/// the POSIX reason behind it (`No space left on device`), with what it means for the
/// user when the disk is full.
public enum SystemErrorText {
    public static func describe(_ error: any Error) -> String {
        let code = posixCode(error as NSError)
        switch code {
        case ENOSPC?: return "the disk is full (\(String(cString: strerror(ENOSPC))))"
        case EDQUOT?: return "the disk quota is used up (\(String(cString: strerror(EDQUOT))))"
        case let code?: return String(cString: strerror(code))
        case nil: return (error as NSError).localizedDescription.replacingOccurrences(of: "\n", with: " ")
        }
    }

    /// The POSIX error code of `error` or of the errors under it.
    private static func posixCode(_ error: NSError) -> Int32? {
        if error.domain == NSPOSIXErrorDomain { return Int32(error.code) }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError { return posixCode(underlying) }
        if error.domain == NSCocoaErrorDomain, error.code == CocoaError.fileWriteOutOfSpace.rawValue { return ENOSPC }
        return nil
    }
}
