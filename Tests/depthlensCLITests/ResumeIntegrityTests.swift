import Foundation
import XCTest

/// What `--resume` trusts (issue 23, points 5 and 7), through the binary: files are
/// compared by content, journal records by checksum; and messages stay one line.
final class ResumeIntegrityTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    func finishedUnits(_ path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { $0.hasPrefix("done\t") }.count
    }

    /// Runs `arguments` into `folder` and stops it with SIGTERM once one unit is saved.
    func interrupt(_ arguments: [String], journal: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (process, err) = try CLI.start(arguments, environment: ["DEPTHLENS_TEST_UNIT_PAUSE_MS": "400"])
        while process.isRunning && finishedUnits(journal) < 1 { usleep(20_000) }
        XCTAssertTrue(process.isRunning, "the run ended before it could be signalled", file: file, line: line)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 143, message, file: file, line: line)
    }

    func testAResumeAgainstADataFileChangedInPlaceIsRefusedNamingTheFile() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("data.h5").path
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        let out = folder.appendingPathComponent("out").path
        let base = ["sample", checkpoint, "--data", copy, "--members", "100", "--quiet", "-o", out]
        let journal = "\(out)/sample-progress.journal"
        try interrupt(base, journal: journal)
        let header = try String(contentsOfFile: journal, encoding: .utf8)
        XCTAssertTrue(header.contains("content of \(copy)\txxh64:"), header)
        XCTAssertTrue(header.contains("content of \(checkpoint)\txxh64:"), header)

        // One pixel byte changed; size and modification time kept.
        let modified = try FileManager.default.attributesOfItem(atPath: copy)[.modificationDate]!
        var bytes = try Data(contentsOf: URL(fileURLWithPath: copy))
        bytes[bytes.count - 100] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: copy))
        try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: copy)
        let journalBefore = try Data(contentsOf: URL(fileURLWithPath: journal))

        let refused = try CLI.run(base + ["--resume"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.hasPrefix("Error: \(journal): \(copy) changed since the interrupted run read it: its content was xxh64:"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains(", now xxh64:"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: journal)), journalBefore, "the refused resume changed the journal")
    }

    func testAHandEditedUnitIsComputedAgainAndTheUserIsTold() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let whole = folder.appendingPathComponent("whole").path, parts = folder.appendingPathComponent("parts").path
        let base = ["sample", checkpoint, "--data", data, "--members", "100", "--quiet"]
        XCTAssertEqual(try CLI.run(base + ["-o", whole]).status, 0)
        let journal = "\(parts)/sample-progress.journal"
        try interrupt(base + ["-o", parts], journal: journal)
        // Change one hex digit of the first unit's first payload line.
        var lines = try String(contentsOfFile: journal, encoding: .utf8).components(separatedBy: "\n")
        let unit = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("unit\t") })
        let payload = lines[unit + 1]
        let digit = payload.index(payload.startIndex, offsetBy: payload.count / 2)
        lines[unit + 1] = payload.replacingCharacters(in: digit...digit, with: payload[digit] == "0" ? "1" : "0")
        try lines.joined(separator: "\n").write(toFile: journal, atomically: false, encoding: .utf8)

        let resumed = try CLI.run(base + ["-o", parts, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("sample: 1 saved unit(s) in \(journal) do not match their checksums (edited or damaged); they are computed again"), resumed.stderr)
        for name in ["sample-results.csv", "sample-masks.csv"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(parts)/\(name)")),
                           try Data(contentsOf: URL(fileURLWithPath: "\(whole)/\(name)")), name)
        }
    }

    func testAResumedReportSaysItsRunTimeIsThisSessions() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["report", checkpoint, "--data", data, "--members", "2", "--trials", "2", "--max-k", "3", "--quiet",
                    "-o", folder.path]
        try interrupt(base, journal: folder.appendingPathComponent("report-progress.journal").path)
        // Not --quiet: the run time goes to standard error (summary.md holds results alone,
        // so that a merge of shards writes the same bytes, docs/scale-out.md).
        let resumed = try CLI.run(base.filter { $0 != "--quiet" } + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains(" s in this session, resumed from "), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains(" unit(s) saved by an interrupted run, whose time is not counted"), resumed.stderr)
        let summary = try String(contentsOfFile: folder.appendingPathComponent("summary.md").path, encoding: .utf8)
        XCTAssertFalse(summary.contains("run time"), summary)
    }

    func testAFileNameWithALineBreakStaysOnTheErrorLine() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let odd = folder.appendingPathComponent("two\nlines.h5").path
        try FileManager.default.copyItem(atPath: data, toPath: odd)
        let result = try CLI.run(["eval", checkpoint, "--data", odd, "--offset", "1000"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("two\\nlines.h5"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--offset 1000 is beyond the 48 images"), result.stderr)
    }

    func testAPipeOrALinkLoopAsACheckpointOrScheduleFileIsRefusedWithoutWaiting() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("fifo").path, loop = folder.appendingPathComponent("loop").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        let cases: [([String], String)] = [
            (["inspect", fifo], "Error: \(fifo): is a named pipe (FIFO), not a checkpoint file"),
            (["inspect", fifo, "--arch", "timm/resnet18"], "Error: \(fifo): is a named pipe (FIFO), not a checkpoint file"),
            (["inspect", loop], "Error: \(loop): is a symbolic link loop (too many levels of symbolic links), not a checkpoint file"),
            (["eval", checkpoint, "--data", loop], "Error: \(loop): is a symbolic link loop"),
            (["schedule", "custom:file=\(fifo)", "--checkpoint", checkpoint], "\(fifo) is a named pipe (FIFO); give a regular file of probabilities"),
            (["schedule", "custom:file=\(folder.path)", "--checkpoint", checkpoint], "\(folder.path) is a folder; give a regular file of probabilities"),
            (["schedule", "custom:file=\(loop)", "--checkpoint", checkpoint], "\(loop) is a symbolic link loop"),
        ]
        for (arguments, message) in cases {
            let result = try CLI.run(arguments)
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}
