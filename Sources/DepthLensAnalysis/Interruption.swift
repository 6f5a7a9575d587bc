import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Synchronization

/// A request that long analyses stop between units of work: the unit in progress is
/// abandoned, finished ones stay in the ``ProgressJournal``, and the analysis throws
/// ``Interrupted``. Analyses with a journal poll the context's request
/// (``AnalysisContext/stopRequest``).
///
/// The library installs no signal handler and reads no process state: whoever runs the
/// analysis sets the request (the `depthlens` command line does so from its SIGINT and
/// SIGTERM handlers; a test, from a progress callback). Setting it is async-signal-safe.
public final class StopRequest: Sendable {
    private let requested = Atomic<Int32>(0)

    public init() {}

    /// Asks analyses to stop. `code` (non-zero) is handed back in ``Interrupted`` for the
    /// requester's own use, such as the number of the signal that asked for the stop.
    public func request(_ code: Int32 = 1) { requested.store(code == 0 ? 1 : code, ordering: .relaxed) }

    /// The code of the request, or nil when none was made.
    public var code: Int32? {
        let value = requested.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// - Throws: ``Interrupted`` when a stop has been requested.
    public func check() throws {
        if let code { throw Interrupted(code: code) }
    }

    /// Forgets a request.
    public func reset() { requested.store(0, ordering: .relaxed) }
}

/// An analysis stopped on a ``StopRequest`` between units of work.
public struct Interrupted: Error, CustomStringConvertible, Equatable {
    /// The code the request was made with.
    public var code: Int32

    public init(code: Int32) { self.code = code }

    public var description: String { "interrupted" }
}
