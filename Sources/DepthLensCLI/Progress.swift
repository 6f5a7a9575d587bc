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

    func update(done: Int, total: Int, unit: String = "images") {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(start)
        guard elapsed > 1 || shown else { return }
        shown = true
        let rate = Double(done) / max(elapsed, 1e-9)
        let left = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "%@: %d/%d %@, %.0f/s, %.0fs left", label, done, total, unit, rate, left)
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
    }

    func finish() {
        guard enabled, shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
