import Foundation
import Synchronization

/// SIGINT and SIGTERM, turned into a request that long analyses honour between units of
/// work: the unit in progress is abandoned, finished ones stay in the ``ProgressJournal``,
/// and the run stops with ``Interrupted``. A second signal of the same kind ends the
/// process at once (the default action is restored after the first).
public enum Interruption {
    private static let received = Atomic<Int32>(0)

    /// Installs the handlers; call once, early, from an executable.
    public static func install() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { number in
                Interruption.received.store(number, ordering: .relaxed)
                signal(number, SIG_DFL)
            }
        }
    }

    /// The signal received, or nil.
    public static var receivedSignal: Int32? {
        let value = received.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// - Throws: ``Interrupted`` when a signal has been received.
    public static func check() throws {
        if let receivedSignal { throw Interrupted(signal: receivedSignal) }
    }

    /// Simulates a signal (for tests of code that polls ``check()``).
    public static func request(_ signalNumber: Int32) { received.store(signalNumber, ordering: .relaxed) }

    /// Forgets a received signal.
    public static func reset() { received.store(0, ordering: .relaxed) }
}

/// A run stopped by SIGINT or SIGTERM between units of work.
public struct Interrupted: Error, CustomStringConvertible, Equatable {
    public var signal: Int32

    public init(signal: Int32) { self.signal = signal }

    /// 128 + the signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM).
    public var exitCode: Int32 { 128 + signal }

    public var description: String { "interrupted by \(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)")" }
}
