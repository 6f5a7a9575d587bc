import Foundation

/// A one-line progress report on standard error, with rate and time left, shown only
/// when standard error is a terminal and the work lasts over a second.
final class ProgressLine {
    private let label: String
    private let enabled: Bool
    private let start = Date()
    private var shown = false

    init(_ label: String, quiet: Bool) {
        self.label = label
        enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// - Parameter unit: what `done` and `total` count, shown with a rate; nil when they count
    ///   work in no unit a user would recognise (an analysis counts images times groups of
    ///   sub-networks), shown as a percentage instead.
    func update(done: Int, total: Int, unit: String? = "images") {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(start)
        guard elapsed > 1 || shown else { return }
        shown = true
        let rate = Double(done) / max(elapsed, 1e-9)
        let left = rate > 0 ? Double(total - done) / rate : 0
        let line = if let unit {
            String(format: "%@: %d/%d %@, %.0f/s, %.0fs left", label, done, total, unit, rate, left)
        } else {
            String(format: "%@: %.0f%% done, %.0fs left", label, 100 * Double(done) / Double(max(total, 1)), left)
        }
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
    }

    func finish() {
        guard enabled, shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
