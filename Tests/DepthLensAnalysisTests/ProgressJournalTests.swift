import DepthLens
import DepthLensMetrics
import Foundation
import XCTest

/// The progress journal: bit-exact units, a torn last unit ignored and cut off, a
/// different configuration refused, and analyses that stop between units on a signal.
final class ProgressJournalTests: XCTestCase {
    let configuration = [("analysis", "sample"), ("seed", "7")]

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path
    }

    func context() throws -> AnalysisContext {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
        let checkpoint = try Checkpoint.load(from: fixtures.appendingPathComponent("golden/official.ckpt.h5").path)
        let source = try DataSetRequest(path: fixtures.appendingPathComponent("analyses/official-labelled.h5").path).open(for: checkpoint)
        let registry = PluginRegistry()
        BuiltinMetrics.register(in: registry)
        return AnalysisContext(checkpoint: checkpoint, evaluator: Evaluator(network: Network(checkpoint: checkpoint), threads: 1),
                               source: source, batchSize: 16, survival: checkpoint.training!.survivalProbabilities!,
                               scheduleName: "recorded", rule: .expectation, metrics: ["accuracy", "nll"], registry: registry, seed: 7)
    }

    func testUnitsRoundTripAndATornUnitIsCutOff() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
        let values: [Float] = [1.5, -0.0, .nan, .infinity, 3.1415927, .leastNonzeroMagnitude]
        try journal.record(section: "s", unit: 0, payload: [ProgressJournal.encode(values), ProgressJournal.encode(0.1)])
        journal.remove()
        let kept = try ProgressJournal(path: path, configuration: configuration, resume: false)
        try kept.record(section: "s", unit: 0, payload: [ProgressJournal.encode(values)])
        // A unit whose write was cut short: no `done` line.
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data("unit\ts/1\t1\nabcd".utf8))
        handle.closeFile()
        let resumed = try ProgressJournal(path: path, configuration: configuration, resume: true)
        XCTAssertEqual(resumed.resumedUnits, 1)
        XCTAssertNil(resumed.finishedUnit(section: "s", unit: 1))
        let decoded = ProgressJournal.decodeFloats(resumed.finishedUnit(section: "s", unit: 0)![0][...])!
        XCTAssertEqual(decoded.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertFalse(try String(contentsOfFile: path, encoding: .utf8).contains("abcd"), "the torn unit is cut off")
        XCTAssertEqual(ProgressJournal.decodeDouble(ProgressJournal.encode(0.1)[...]), 0.1)
    }

    func testADifferentConfigurationOrAStartOverIsRefused() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
        try journal.record(section: "s", unit: 0, payload: ["x"])
        XCTAssertThrowsError(try ProgressJournal(path: path, configuration: [("analysis", "sample"), ("seed", "8")], resume: true)) {
            XCTAssertTrue("\($0)".contains("seed was '7', now '8'"), "\($0)")
        }
        XCTAssertThrowsError(try ProgressJournal(path: path, configuration: configuration, resume: false)) {
            XCTAssertTrue("\($0)".contains("holds 1 finished unit(s) of an interrupted run; resume it to continue"), "\($0)")
            XCTAssertEqual(($0 as? JournalError)?.reason, .unfinishedRun)
            XCTAssertFalse("\($0)".contains("--"), "a flag name in a library error: \($0)")
        }
        try "not a journal\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProgressJournal(path: path, configuration: configuration, resume: true)) {
            XCTAssertTrue("\($0)".contains("is not a DepthLens progress file"), "\($0)")
        }
    }

    func testAnalysisStopsOnASignalAndResumesToTheSameTable() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plain = try SampleAnalysis.run(try context(), members: 40)
        var journaled = try context()
        journaled.journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
        // Ask for a stop after the first group of 16 sub-networks (16 units, one each) is saved.
        let stop = StopRequest()
        journaled.stopRequest = stop
        journaled.progress = { done, total in
            if done >= total / 3 { stop.request(15) }
        }
        XCTAssertThrowsError(try SampleAnalysis.run(journaled, members: 40)) {
            XCTAssertEqual($0 as? Interrupted, Interrupted(code: 15))
        }
        XCTAssertEqual(journaled.journal?.finishedCount, MemberEvaluation.configurationsPerUnit)
        var resumed = try context()
        resumed.journal = try ProgressJournal(path: path, configuration: configuration, resume: true)
        XCTAssertEqual(resumed.journal?.resumedUnits, MemberEvaluation.configurationsPerUnit)
        let table = try SampleAnalysis.run(resumed, members: 40)
        XCTAssertEqual(table.resultsCSV, plain.resultsCSV)
        XCTAssertEqual(table.masksCSV, plain.masksCSV)
        XCTAssertEqual(resumed.journal?.recordedUnits, 40 - MemberEvaluation.configurationsPerUnit)
    }

    func testEnsembleStopsBetweenBatchesAndResumesToTheSameTable() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plain = try EnsembleAnalysis.run(try context(), members: 3, granularity: .sample)
        var journaled = try context()
        let size = journaled.batchSize
        let batches = (journaled.source.count + size - 1) / size
        XCTAssertGreaterThan(batches, 2)
        journaled.journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
        // Ask for a stop once two batches (one unit each) are saved.
        let stop = StopRequest()
        journaled.stopRequest = stop
        journaled.progress = { done, _ in
            if done >= 2 * size { stop.request(2) }
        }
        XCTAssertThrowsError(try EnsembleAnalysis.run(journaled, members: 3, granularity: .sample)) {
            XCTAssertEqual($0 as? Interrupted, Interrupted(code: 2))
        }
        XCTAssertEqual(journaled.journal?.finishedCount, 2)
        var resumed = try context()
        resumed.journal = try ProgressJournal(path: path, configuration: configuration, resume: true)
        let table = try EnsembleAnalysis.run(resumed, members: 3, granularity: .sample)
        XCTAssertEqual(table.resultsCSV, plain.resultsCSV)
        XCTAssertEqual(table.masksCSV, plain.masksCSV)
        XCTAssertEqual(resumed.journal?.recordedUnits, batches - 2, "the saved batches are replayed, not evaluated again")
    }
}
