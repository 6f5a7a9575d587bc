import Foundation
import XCTest

/// Interrupted runs (SIGTERM, SIGINT) continue with --resume to byte-identical results,
/// and the same seed gives byte-identical CSV for any thread count and batch size.
final class ResumeAndDeterminismTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// Starts the binary; `pause` makes it sleep after each saved unit so that a signal
    /// surely lands mid-run (the test hook DEPTHLENS_TEST_UNIT_PAUSE_MS).
    func start(_ arguments: [String], pauseMilliseconds pause: Int) throws -> (Process, Pipe) {
        try CLI.start(arguments, environment: ["DEPTHLENS_TEST_UNIT_PAUSE_MS": "\(pause)"])
    }

    /// Finished units in a progress journal.
    func finishedUnits(_ path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { $0.hasPrefix("done\t") }.count
    }

    /// Runs `arguments` to completion in one folder; in another, signals it once
    /// `unitsBeforeSignal` units are saved, checks it stopped cleanly, resumes it, and
    /// compares every CSV byte for byte.
    func assertInterruptedRunResumesIdentically(_ analysis: String, _ arguments: [String], signal: Int32,
                                                unitsBeforeSignal: Int = 2, file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let whole = folder.appendingPathComponent("whole").path, parts = folder.appendingPathComponent("parts").path
        let base = [analysis, checkpoint, "--data", data, "--quiet"] + arguments
        let uninterrupted = try CLI.run(base + ["-o", whole])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stderr, file: file, line: line)

        let journal = "\(parts)/\(analysis)-progress.journal"
        let (process, err) = try start(base + ["-o", parts], pauseMilliseconds: 400)
        while process.isRunning && finishedUnits(journal) < unitsBeforeSignal { usleep(20_000) }
        XCTAssertTrue(process.isRunning, "the run ended before it could be signalled", file: file, line: line)
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if signal == SIGKILL {
            // No chance to clean up: whatever was being written is cut short.
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, message, file: file, line: line)
        } else {
            XCTAssertEqual(process.terminationReason, .exit, message, file: file, line: line)
            XCTAssertEqual(process.terminationStatus, 128 + signal, message, file: file, line: line)
            XCTAssertTrue(message.contains("interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM")"), message, file: file, line: line)
            XCTAssertTrue(message.contains("--resume"), message, file: file, line: line)
        }
        let saved = finishedUnits(journal)
        XCTAssertGreaterThanOrEqual(saved, unitsBeforeSignal, file: file, line: line)
        let left = try FileManager.default.contentsOfDirectory(atPath: parts).sorted()
        // SIGKILL leaves the folder's lock file too, stale (the kernel dropped the lock); the
        // runs below take it over.
        XCTAssertEqual(left, (signal == SIGKILL ? [".depthlens.lock"] : []) + ["\(analysis)-progress.journal"],
                       "an interrupted run leaves only its journal", file: file, line: line)

        // Without --resume the finished work is not thrown away.
        let refused = try CLI.run(base + ["-o", parts])
        XCTAssertEqual(refused.status, 1, file: file, line: line)
        XCTAssertTrue(refused.stderr.contains("finished unit(s) of an interrupted run; add --resume"), refused.stderr, file: file, line: line)
        // Another configuration cannot resume it.
        let other = try CLI.run(base + ["-o", parts, "--resume", "--seed", "99"])
        XCTAssertEqual(other.status, 1, file: file, line: line)
        XCTAssertTrue(other.stderr.contains("another configuration: seed was '0', now '99'"), other.stderr, file: file, line: line)

        let resumed = try CLI.run(base + ["-o", parts, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr, file: file, line: line)
        let names = try FileManager.default.contentsOfDirectory(atPath: whole).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parts).sorted(), names, "the journal is gone", file: file, line: line)
        for name in names where name.hasSuffix(".csv") {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/\(name)"))
            let b = try Data(contentsOf: URL(fileURLWithPath: "\(parts)/\(name)"))
            XCTAssertEqual(a, b, "\(name) differs after resuming", file: file, line: line)
        }
    }

    func testSampleResumesAfterSIGTERM() throws {
        try assertInterruptedRunResumesIdentically("sample", ["--members", "100"], signal: SIGTERM)
    }

    func testSampleResumesAfterSIGKILL() throws {
        try assertInterruptedRunResumesIdentically("sample", ["--members", "100"], signal: SIGKILL)
    }

    func testLesionResumesAfterSIGINT() throws {
        try assertInterruptedRunResumesIdentically("lesion", ["--single", "--random-k", "6", "--trials", "12"], signal: SIGINT)
    }

    func testEnsembleResumesAfterSIGTERM() throws {
        try assertInterruptedRunResumesIdentically("ensemble", ["--members", "6", "--granularity", "sample", "--batch-size", "4"],
                                                   signal: SIGTERM, unitsBeforeSignal: 3)
        // Per-batch masks are recorded for replayed batches too.
        try assertInterruptedRunResumesIdentically("ensemble", ["--members", "4", "--granularity", "batch", "--batch-size", "4"],
                                                   signal: SIGINT, unitsBeforeSignal: 3)
    }

    func testRecalibratedSampleResumesAfterSIGTERM() throws {
        try assertInterruptedRunResumesIdentically("sample", ["--members", "40", "--recalibrate", "16", "--recalibration-data", data],
                                                   signal: SIGTERM, unitsBeforeSignal: 1)
    }

    func testDepthAndReorderResumeAfterSIGINT() throws {
        try assertInterruptedRunResumesIdentically("depth", ["--depths", "0-6", "--trials", "8"], signal: SIGINT)
        try assertInterruptedRunResumesIdentically("reorder", ["--swaps", "0,1,2,4,8", "--trials", "10"], signal: SIGINT, unitsBeforeSignal: 1)
    }

    func testGradientPathsResumeAfterSIGINT() throws {
        // Twelve units of four images each, every one through all route patterns.
        try assertInterruptedRunResumesIdentically("paths", ["--gradients", "--gradient-images", "48", "--samples", "2"], signal: SIGINT)
    }

    func testReportResumesAfterSIGTERMAcrossItsAnalyses() throws {
        // One journal for the lesion, ensemble and depth parts; signalled after the lesion's units.
        try assertInterruptedRunResumesIdentically("report", ["--members", "3", "--trials", "6", "--max-k", "5", "--batch-size", "8"],
                                                   signal: SIGTERM, unitsBeforeSignal: 3)
    }

    /// The same seed gives the same bytes whatever the thread count and batch size (the
    /// batch-granularity ensemble excepted: it draws a mask per batch by definition).
    func testSameSeedGivesByteIdenticalCSVForAnyThreadCountAndBatchSize() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let runs: [[String]] = [
            ["sample", "--members", "20"],
            ["ensemble", "--members", "5", "--granularity", "sample"],
            ["ensemble", "--members", "5", "--granularity", "pass"],
            ["lesion", "--single", "--random-k", "4", "--trials", "3"],
            ["depth", "--depths", "0,2,4,6", "--trials", "3"],
            ["reorder", "--swaps", "0,2,4", "--trials", "2"],
        ]
        let settings: [(threads: String, batch: String)] = [("1", "5"), ("3", "48"), ("2", "17")]
        for run in runs {
            var outputs: [[String: Data]] = []
            for (i, s) in settings.enumerated() {
                let out = folder.appendingPathComponent("\(run.joined(separator: "_"))-\(i)").path
                let result = try CLI.run(run + [checkpoint, "--data", data, "--seed", "5", "--threads", s.threads,
                                                "--batch-size", s.batch, "-o", out, "--quiet"])
                XCTAssertEqual(result.status, 0, "\(run): \(result.stderr)")
                var files: [String: Data] = [:]
                for name in try FileManager.default.contentsOfDirectory(atPath: out) where name.hasSuffix(".csv") {
                    files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(name)"))
                }
                XCTAssertFalse(files.isEmpty)
                outputs.append(files)
            }
            for other in outputs.dropFirst() {
                XCTAssertEqual(other.keys.sorted(), outputs[0].keys.sorted())
                for (name, bytes) in outputs[0] {
                    XCTAssertEqual(other[name], bytes, "\(run): \(name) depends on threads or batch size")
                }
            }
        }
    }
}
