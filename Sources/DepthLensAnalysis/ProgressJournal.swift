import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// Finished units of a long analysis, saved as they complete so that an interrupted run
/// can continue (resume) without repeating or losing work.
///
/// The file is text: a header line with the run's configuration, then for each finished
/// unit its payload lines and a closing `done` line with the unit's checksum, appended and
/// flushed to disk in one write. A unit without its `done` line (a run killed mid-write) is
/// ignored and cut off on resume; a unit whose checksum does not match is computed again
/// (``damagedUnits``, ``RecordScan``). Units are named by a section (a digest of what is evaluated: sub-networks,
/// data, metrics) and an index, so one journal serves every evaluation of a run.
///
/// Payloads are stored bit-exactly, so a resumed run writes byte-identical results.
public final class ProgressJournal: @unchecked Sendable {
    /// v2: each `done` line carries the unit's checksum (v1 had none).
    public static let formatLine = "depthlens-progress v2"

    public let path: String
    /// (field, value) pairs describing the run; resuming requires them all equal.
    public let configuration: [(String, String)]
    private var finished: [String: [String]] = [:]
    private let handle: FileHandle
    private let lock = NSLock()
    /// Units found in the file when resuming.
    public private(set) var resumedUnits = 0
    /// Units found in the file whose checksum does not match their contents (edited or
    /// damaged): not used, computed again.
    public private(set) var damagedUnits = 0
    /// Units written by this run.
    public private(set) var recordedUnits = 0
    /// Test hook: milliseconds to sleep after recording each unit, so that a test can stop
    /// a run while it is surely in progress (the command line sets it from
    /// `DEPTHLENS_TEST_UNIT_PAUSE_MS`).
    public var pauseAfterUnit: UInt32 = 0

    /// Opens the journal at `path`.
    /// - Parameters:
    ///   - resume: continue the run recorded there (it must exist and match); otherwise
    ///     start a new one (refused when an interrupted run's finished units are there).
    /// - Throws: ``JournalError`` naming the file and, on a mismatch, the field.
    public init(path: String, configuration: [(String, String)], resume: Bool) throws {
        self.path = path
        self.configuration = configuration
        let exists = FileManager.default.fileExists(atPath: path)
        var keepBytes = 0
        if resume {
            guard exists, let data = FileManager.default.contents(atPath: path) else {
                throw JournalError(path: path, message: "nothing to resume: no progress file (the run finished, or never started)", reason: .nothingToResume)
            }
            var header: [(String, String)] = []
            var damaged = DamagedRecords()
            keepBytes = try Self.read(data, path: path, expected: configuration, into: &finished, header: &header,
                                      damaged: &damaged)
            damagedUnits = damaged.count
            resumedUnits = finished.count
        } else if exists, let data = FileManager.default.contents(atPath: path) {
            var units: [String: [String]] = [:]
            var header: [(String, String)] = []
            var damaged = DamagedRecords()
            _ = try? Self.read(data, path: path, expected: nil, into: &units, header: &header, damaged: &damaged)
            if !units.isEmpty {
                throw JournalError(path: path, message: "holds \(units.count) finished unit(s) of an interrupted run", reason: .unfinishedRun)
            }
        }
        if !resume {
            let header = Self.formatLine + "\n" + configuration.map { "\(Self.escape($0.0))\t\(Self.escape($0.1))\n" }.joined() + "\n"
            guard FileManager.default.createFile(atPath: path, contents: Data(header.utf8)) else {
                throw JournalError(path: path, message: "cannot create the progress file: \(String(cString: strerror(errno)))")
            }
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw JournalError(path: path, message: "cannot open the progress file: \(String(cString: strerror(errno)))")
        }
        self.handle = handle
        if resume {
            // Cut off a unit whose write was interrupted.
            try handle.truncate(atOffset: UInt64(keepBytes))
        }
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    /// The payload of a finished unit, or nil.
    public func finishedUnit(section: String, unit: Int) -> [String]? {
        lock.lock()
        defer { lock.unlock() }
        return finished["\(section)/\(unit)"]
    }

    /// Saves a finished unit: appended and flushed to disk before returning.
    public func record(section: String, unit: Int, payload: [String]) throws {
        try record(section: section, units: [(unit, payload)])
    }

    /// Saves finished units of one section together: appended and flushed to disk in one
    /// write before returning (each is still a unit of its own on resume).
    public func record(section: String, units: [(index: Int, payload: [String])]) throws {
        try record(units.map { ("\(section)/\($0.index)", $0.payload) })
    }

    /// Saves finished units named `SECTION/INDEX` (as ``units`` lists them), in one write.
    public func record(_ units: [(key: String, payload: [String])]) throws {
        guard !units.isEmpty else { return }
        var text = ""
        for (key, payload) in units {
            text += "unit\t\(key)\t\(payload.count)\n"
            for line in payload {
                precondition(!line.contains("\n"), "journal payload lines cannot hold newlines")
                text += line + "\n"
            }
            text += "done\t\(key)\t\(Self.checksum(key: key, payload: payload))\n"
        }
        lock.lock()
        defer { lock.unlock() }
        do {
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
        } catch {
            throw JournalError(path: path, message: "cannot save progress: \(SystemErrorText.describe(error))")
        }
        for (key, payload) in units { finished[key] = payload }
        recordedUnits += units.count
        if pauseAfterUnit > 0 { usleep(pauseAfterUnit * 1000) }
    }

    /// Every finished unit, by `SECTION/INDEX`.
    public var units: [String: [String]] {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }

    /// Records whose checksum or framing does not match (edited or damaged): their units
    /// are not used.
    public struct DamagedRecords: Sendable, Equatable {
        /// Keys (`SECTION/INDEX`) of damaged records whose unit has no intact record, sorted.
        public var keys: [String] = []
        /// Damaged stretches whose key cannot be read.
        public var unreadable = 0
        public var count: Int { keys.count + unreadable }
    }

    /// Reads a journal without opening it for writing: its configuration, its finished
    /// units (a unit cut short is left out) and its damaged records (left out too), as a
    /// merge of shards needs them.
    /// - Throws: ``JournalError`` when the file is missing or not a journal.
    public static func contents(of path: String) throws -> (configuration: [(String, String)], units: [String: [String]],
                                                            damaged: DamagedRecords) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JournalError(path: path, message: "cannot read the progress file", reason: .nothingToResume)
        }
        var units: [String: [String]] = [:]
        var configuration: [(String, String)] = []
        var damaged = DamagedRecords()
        _ = try read(data, path: path, expected: nil, into: &units, header: &configuration, damaged: &damaged)
        return (configuration, units, damaged)
    }

    /// Deletes the journal once the results are written.
    public func remove() {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Deletes the journal when it holds no finished unit (so a failed start leaves nothing).
    /// - Returns: whether it was deleted.
    @discardableResult
    public func removeIfEmpty() -> Bool {
        lock.lock()
        let empty = finished.isEmpty
        lock.unlock()
        if empty { remove() }
        return empty
    }

    /// Number of finished units (resumed and new).
    public var finishedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return finished.count
    }

    /// Parses a journal; returns the byte length of its valid part (up to the last `done`).
    private static func read(_ data: Data, path: String, expected: [(String, String)]?,
                             into units: inout [String: [String]], header: inout [(String, String)],
                             damaged: inout DamagedRecords) throws -> Int {
        let bytes = [UInt8](data)
        var lines: [(text: String, end: Int)] = []
        var start = 0
        for (i, byte) in bytes.enumerated() where byte == 0x0A {
            lines.append((String(decoding: bytes[start..<i], as: UTF8.self), i + 1))
            start = i + 1
        }
        if lines.first?.text == "depthlens-progress v1" {
            throw JournalError(path: path, message: "was written by an earlier DepthLens (progress format v1, without content fingerprints or unit checksums), so it cannot be checked", reason: .incompleteHeader)
        }
        guard let first = lines.first, first.text == formatLine else {
            throw JournalError(path: path, message: "is not a DepthLens progress file (its first line is not '\(formatLine)')")
        }
        var index = 1
        var recorded: [(String, String)] = []
        while index < lines.count, !lines[index].text.isEmpty {
            let parts = lines[index].text.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            recorded.append((unescape(String(parts[0])), parts.count > 1 ? unescape(String(parts[1])) : ""))
            index += 1
        }
        header = recorded
        guard index < lines.count else {
            throw JournalError(path: path, message: "its header is incomplete (the run stopped while creating it)", reason: .incompleteHeader)
        }
        if let expected {
            let old = Dictionary(recorded, uniquingKeysWith: { a, _ in a })
            let new = Dictionary(expected, uniquingKeysWith: { a, _ in a })
            for (field, value) in expected where old[field] != value {
                throw JournalError(path: path, message: "was written by a run with another configuration: \(field) was '\(old[field] ?? "(absent)")', now '\(value)'; rerun with the same flags, or delete the file to start over")
            }
            if let extra = recorded.first(where: { new[$0.0] == nil }) {
                throw JournalError(path: path, message: "was written by a run with another configuration: \(extra.0) was '\(extra.1)', now absent")
            }
        }
        var records = RecordScan(lines: lines.map(\.text), start: index + 1)
        records.scan()
        for (key, payload) in records.intact { units[key] = payload }
        damaged = DamagedRecords(keys: records.damagedKeys.subtracting(records.intact.keys).sorted(), unreadable: records.unreadableRecords)
        // Cut off only a torn tail (after the last complete record); damaged records
        // before it stay, skipped on every read.
        return lines[records.lastCompleteLine ?? index].end
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\t", with: "%09")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "%0A", with: "\n").replacingOccurrences(of: "%09", with: "\t")
            .replacingOccurrences(of: "%25", with: "%")
    }

    // MARK: payload encoding

    /// Bit-exact text for a Double (16 hex digits of its bit pattern).
    public static func encode(_ value: Double) -> String { String(value.bitPattern, radix: 16) }
    public static func decodeDouble(_ text: Substring) -> Double? { UInt64(text, radix: 16).map(Double.init(bitPattern:)) }

    /// Bit-exact text for floats (8 hex digits each, no separator).
    public static func encode(_ values: [Float]) -> String {
        var out = ""
        out.reserveCapacity(values.count * 8)
        for v in values {
            let hex = String(v.bitPattern, radix: 16)
            out += String(repeating: "0", count: 8 - hex.count) + hex
        }
        return out
    }

    public static func decodeFloats(_ text: Substring) -> [Float]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 8 == 0 else { return nil }
        var out = [Float]()
        out.reserveCapacity(utf8.count / 8)
        var i = 0
        while i < utf8.count {
            var bits: UInt32 = 0
            for j in 0..<8 {
                let c = utf8[i + j]
                let digit: UInt32
                switch c {
                case 0x30...0x39: digit = UInt32(c - 0x30)
                case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
                default: return nil
                }
                bits = bits << 4 | digit
            }
            out.append(Float(bitPattern: bits))
            i += 8
        }
        return out
    }

    /// A stable 64-bit digest (FNV-1a) of some bytes, as 16 hex digits: names sections.
    public static func digest(_ parts: [[UInt8]]) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for part in parts {
            for byte in part { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
            hash = (hash ^ 0xff) &* 0x100000001b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// A progress file that cannot be used.
public struct JournalError: Error, CustomStringConvertible, Equatable {
    /// Why the journal cannot be used, where the remedy depends on it.
    public enum Reason: Sendable, Equatable {
        /// Resuming, but there is no journal.
        case nothingToResume
        /// Starting anew over a journal that holds finished units.
        case unfinishedRun
        /// Resuming from a journal whose header was cut short.
        case incompleteHeader
        /// Any other problem; the message says what to do.
        case other
    }

    public var path: String
    /// What is wrong, without the remedy.
    public var message: String
    public var reason: Reason

    public init(path: String, message: String, reason: Reason = .other) {
        self.path = path
        self.message = message
        self.reason = reason
    }

    /// What to do about it, in the library's terms (a front end names its own settings).
    public var remedy: String? {
        switch reason {
        case .nothingToResume: return "start a new run instead"
        case .unfinishedRun: return "resume it to continue, or delete the file to start over"
        case .incompleteHeader: return "delete the file and start a new run"
        case .other: return nil
        }
    }

    public var description: String { "\(path): \(message)" + (remedy.map { "; \($0)" } ?? "") }
}
