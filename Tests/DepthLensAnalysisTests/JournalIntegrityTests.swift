import DepthLens
import Foundation
import XCTest

/// What a resume may trust (issue 23, point 5): a unit whose record was edited or damaged
/// is computed again, never used; a file whose content changed since the run read it is
/// named with both fingerprints.
final class JournalIntegrityTests: XCTestCase {
    let configuration = [("analysis", "sample"), ("seed", "7")]

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path
    }

    /// A journal holding units s/0, s/1, s/2 with two payload lines each.
    func journal(at path: String) throws -> String {
        let journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
        for unit in 0..<3 {
            try journal.record(section: "s", unit: unit, payload: [ProgressJournal.encode([Float(unit), 2]), ProgressJournal.encode(0.25)])
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    func resume(_ text: String, at path: String) throws -> ProgressJournal {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return try ProgressJournal(path: path, configuration: configuration, resume: true)
    }

    func testEveryDoneLineCarriesTheChecksumOfItsUnit() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try journal(at: path)
        let done = text.split(separator: "\n").filter { $0.hasPrefix("done\t") }
        XCTAssertEqual(done.count, 3)
        for line in done {
            let fields = line.split(separator: "\t")
            XCTAssertEqual(fields.count, 3, String(line))
            XCTAssertEqual(fields[2].count, 16, String(line))
        }
        XCTAssertTrue(text.hasPrefix("depthlens-progress v2\n"))
        let intact = try resume(text, at: path)
        XCTAssertEqual(intact.resumedUnits, 3)
        XCTAssertEqual(intact.damagedUnits, 0)
    }

    func testAnEditedPayloadIsComputedAgainNotUsed() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try journal(at: path)
        // Unit s/1's float 1.0 (3f800000) becomes 1.5 (3fc00000): the hex still decodes.
        let edited = text.replacingOccurrences(of: "3f80000040000000", with: "3fc0000040000000")
        XCTAssertNotEqual(edited, text)
        let resumed = try resume(edited, at: path)
        XCTAssertNil(resumed.finishedUnit(section: "s", unit: 1), "an edited unit is not used")
        XCTAssertNotNil(resumed.finishedUnit(section: "s", unit: 0))
        XCTAssertNotNil(resumed.finishedUnit(section: "s", unit: 2), "units after a damaged one are still used")
        XCTAssertEqual(resumed.resumedUnits, 2)
        XCTAssertEqual(resumed.damagedUnits, 1)
        // Computed again and saved, the unit is intact on the next resume.
        try resumed.record(section: "s", unit: 1, payload: [ProgressJournal.encode([1, 2]), ProgressJournal.encode(0.25)])
        let again = try ProgressJournal(path: path, configuration: configuration, resume: true)
        XCTAssertEqual(again.resumedUnits, 3)
        XCTAssertEqual(again.damagedUnits, 0)
        XCTAssertEqual(ProgressJournal.decodeFloats(again.finishedUnit(section: "s", unit: 1)![0][...]), [1, 2])
    }

    func testAChecksumRemovedOrAFramingEditedIsDamageNotATornTail() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try journal(at: path)
        var lines = text.components(separatedBy: "\n")
        let firstDone = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("done\ts/0") })
        // A v1-style done line without its checksum.
        var unchecked = lines
        unchecked[firstDone] = "done\ts/0"
        let noChecksum = try resume(unchecked.joined(separator: "\n"), at: path)
        XCTAssertEqual(noChecksum.damagedUnits, 1)
        XCTAssertNil(noChecksum.finishedUnit(section: "s", unit: 0))
        XCTAssertEqual(noChecksum.resumedUnits, 2)
        // Unit s/1's payload count edited (2 -> 1): its framing breaks; s/2 is still found.
        let secondUnit = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("unit\ts/1\t") })
        lines[secondUnit] = "unit\ts/1\t1"
        let miscounted = try resume(lines.joined(separator: "\n"), at: path)
        XCTAssertEqual(miscounted.damagedUnits, 1)
        XCTAssertNil(miscounted.finishedUnit(section: "s", unit: 1))
        XCTAssertNotNil(miscounted.finishedUnit(section: "s", unit: 2))
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).contains("done\ts/2\t"), "complete records are not cut off")
    }

    func testAJournalOfTheEarlierFormatIsRefusedWithItsReason() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let old = "depthlens-progress v1\nanalysis\tsample\nseed\t7\n\nunit\ts/0\t1\nx\ndone\ts/0\n"
        XCTAssertThrowsError(try resume(old, at: path)) {
            XCTAssertTrue("\($0)".contains("was written by an earlier DepthLens (progress format v1"), "\($0)")
        }
        // Starting over (without resuming) replaces it: it cannot be checked, so it holds no usable unit.
        XCTAssertNoThrow(try ProgressJournal(path: path, configuration: configuration, resume: false))
    }

    func testAChangedFileIsNamedWithBothFingerprints() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fingerprint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("images.h5").path
        try Data("first content".utf8).write(to: URL(fileURLWithPath: data))
        let before = try ContentFingerprint.of(file: data)
        let path = folder.appendingPathComponent("sample-progress.journal").path
        let journal = try ProgressJournal(path: path, configuration: configuration + ProgressJournal.fingerprintFields([before]), resume: false)
        try journal.record(section: "s", unit: 0, payload: ["x"])
        XCTAssertEqual(ProgressJournal.recordedConfiguration(at: path)?.last?.0, "content of \(data)")
        XCTAssertNoThrow(try ProgressJournal.checkUnchanged([before], journal: path))

        // The same size, other bytes, and the old modification time: still noticed.
        let modified = try FileManager.default.attributesOfItem(atPath: data)[.modificationDate]
        try Data("other content".utf8).write(to: URL(fileURLWithPath: data))
        try FileManager.default.setAttributes([.modificationDate: modified!], ofItemAtPath: data)
        let after = try ContentFingerprint.of(file: data)
        XCTAssertEqual(after.bytes, before.bytes)
        XCTAssertNotEqual(after.hash, before.hash)
        XCTAssertThrowsError(try ProgressJournal.checkUnchanged([after], journal: path)) {
            XCTAssertEqual("\($0)", "\(path): \(data) changed since the interrupted run read it: its content was \(before), now \(after); its saved units would mix results of the old and the new file; restore the old file, or delete the progress file to start over")
        }
        // Without the check, the header comparison refuses it too (never silently resumed).
        XCTAssertThrowsError(try ProgressJournal(path: path, configuration: configuration + ProgressJournal.fingerprintFields([after]), resume: true))
    }
}
