import DepthLensFormats
import Foundation

extension ProgressJournal {
    /// The header field that records a file's content (``ContentFingerprint``).
    public static func contentField(_ path: String) -> String { "content of \(path)" }

    /// Header fields recording what each file held: `content of PATH` = `xxh64:HASH, N bytes`.
    public static func fingerprintFields(_ fingerprints: [ContentFingerprint]) -> [(String, String)] {
        var seen = Set<String>()
        return fingerprints.filter { seen.insert($0.path).inserted }.map { (contentField($0.path), $0.description) }
    }

    /// The configuration recorded in the journal at `path`; nil when there is none or it
    /// is not a journal of this format.
    public static func recordedConfiguration(at path: String) -> [(String, String)]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).makeIterator()
        guard lines.next().map(String.init) == formatLine else { return nil }
        var fields: [(String, String)] = []
        while let line = lines.next(), !line.isEmpty {
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            fields.append((unescape(String(parts[0])), parts.count > 1 ? unescape(String(parts[1])) : ""))
        }
        return fields
    }

    /// Refuses to resume the journal at `path` when a file it recorded now holds other
    /// bytes: its saved units were computed from the old content and would be mixed with
    /// new ones. Names the file and both fingerprints. Does nothing when there is no
    /// journal (opening it then says so) or the file was not recorded.
    public static func checkUnchanged(_ fingerprints: [ContentFingerprint], journal path: String) throws {
        guard let recorded = recordedConfiguration(at: path) else { return }
        let old = Dictionary(recorded, uniquingKeysWith: { a, _ in a })
        for print in fingerprints {
            guard let before = old[contentField(print.path)], before != print.description else { continue }
            throw JournalError(path: path, message: "\(print.path) changed since the interrupted run read it: its content was \(before), now \(print.description); its saved units would mix results of the old and the new file; restore the old file, or delete the progress file to start over")
        }
    }
}
