import DepthLensFormats

extension ProgressJournal {
    /// A unit's checksum, recorded on its `done` line: XXH64 of its key and payload lines,
    /// so that a record edited by hand or damaged on disk is computed again, not used.
    static func checksum(key: String, payload: [String]) -> String {
        var hasher = XXHash64()
        hasher.update(Array((key + "\n").utf8))
        for line in payload { hasher.update(Array((line + "\n").utf8)) }
        return XXHash64.hex(hasher.finalize())
    }
}

/// The unit records of a journal, after its header: each is `unit KEY COUNT`, COUNT payload
/// lines, and `done KEY CHECKSUM`.
///
/// - A record whose checksum matches is *intact*.
/// - A complete record whose checksum does not match (its payload edited or damaged), or
///   whose framing is broken (a count or line edited, lines lost) while records follow it,
///   is *damaged*: skipped, and its unit computed again.
/// - What follows the last complete record without holding one is a *torn tail* (a run
///   killed while writing): the journal is cut back to end at that record.
struct RecordScan {
    let lines: [String]
    let start: Int
    /// Payloads of intact records by key (a later intact record of a key replaces one before it).
    private(set) var intact: [String: [String]] = [:]
    /// Keys of damaged records, where the key could still be read.
    private(set) var damagedKeys = Set<String>()
    /// Damaged stretches whose key could not be read.
    private(set) var unreadableRecords = 0
    /// Index of the last line of the last complete (intact or damaged) record; nil when none.
    private(set) var lastCompleteLine: Int?

    init(lines: [String], start: Int) {
        self.lines = lines
        self.start = start
    }

    mutating func scan() {
        var i = start
        while i < lines.count {
            if let (key, count) = Self.header(lines[i]), count < lines.count - i - 1 {
                let close = i + count + 1
                let done = lines[close].split(separator: "\t", omittingEmptySubsequences: false)
                if done.count >= 2, done[0] == "done", done[1] == key {
                    let payload = Array(lines[(i + 1)..<close])
                    if done.count == 3, done[2] == ProgressJournal.checksum(key: key, payload: payload) {
                        intact[key] = payload
                    } else {
                        damagedKeys.insert(key)
                    }
                    lastCompleteLine = close
                    i = close + 1
                    continue
                }
            }
            // Broken framing: resynchronise at the next record, or stop at a torn tail.
            guard let next = lines[(i + 1)...].firstIndex(where: { $0.hasPrefix("unit\t") }) else { return }
            if let (key, _) = Self.header(lines[i]) { damagedKeys.insert(key) } else { unreadableRecords += 1 }
            lastCompleteLine = next - 1
            i = next
        }
    }

    /// `unit KEY COUNT` as (KEY, COUNT).
    private static func header(_ line: String) -> (String, Int)? {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "unit", let count = Int(fields[2]), count >= 0 else { return nil }
        return (String(fields[1]), count)
    }
}
