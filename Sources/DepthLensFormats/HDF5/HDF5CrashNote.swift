import DepthLensModel
import Foundation
import Synchronization

/// A last word when libhdf5 itself crashes on a damaged file: libhdf5 1.10 trusts some
/// fields it cannot check (see docs/reliability.md), and DepthLens validates what it can
/// before calling it. Should a call still fault, the handler prints which file was being
/// read and then hands the signal to the handler that was there before (Swift's
/// backtracer), so the crash report is kept.
package enum HDF5CrashNote {
    /// Set while a libhdf5 call runs.
    static let inLibrary = Atomic<Bool>(false)
    /// The note, preformatted outside the handler: "depthlens: libhdf5 crashed reading PATH ...".
    nonisolated(unsafe) private static var note = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    private static let noteLength = Atomic<Int>(0)
    /// The handlers found at install, by signal number (a plain buffer: the handler may
    /// not allocate or touch reference counts).
    nonisolated(unsafe) private static var previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
    private static let installed = Atomic<Bool>(false)

    /// Installs the handlers for SIGSEGV, SIGBUS and SIGFPE (once; from an executable).
    public static func install() {
        guard !installed.exchange(true, ordering: .relaxed) else { return }
        for number in [SIGSEGV, SIGBUS, SIGFPE] {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, _ in
                if HDF5CrashNote.inLibrary.load(ordering: .relaxed) {
                    _ = write(STDERR_FILENO, HDF5CrashNote.note, HDF5CrashNote.noteLength.load(ordering: .relaxed))
                }
                // Restore the previous handler; returning re-runs the faulting instruction,
                // which now reaches it.
                sigaction(number, HDF5CrashNote.previous + Int(number), nil)
                // A signal sent with kill() is not raised again by returning: send it again.
                if let info, info.pointee.si_code <= 0 { raise(number) }
            }
            action.sa_flags = SA_SIGINFO | SA_ONSTACK
            previous.advanced(by: Int(number)).initialize(to: sigaction())
            sigaction(number, &action, previous + Int(number))
        }
    }

    /// Records the file about to be read (called by the HDF5 layer before libhdf5 calls).
    static func reading(_ path: String) {
        let text = "\ndepthlens: libhdf5 crashed while reading \(path); the file is damaged in a way DepthLens cannot check before libhdf5 reads it (docs/reliability.md)\n"
        let bytes = Array(text.utf8.prefix(4095))
        noteLength.store(0, ordering: .relaxed)
        bytes.withUnsafeBufferPointer { note.update(from: $0.baseAddress!, count: bytes.count) }
        noteLength.store(bytes.count, ordering: .relaxed)
    }
}
