import Foundation
import XCTest

/// One run per output folder: a second writer (or a `--resume`) beside a live run is
/// refused and touches nothing; a lock file left by a dead run does not block; a run
/// stopped before its first unit does not offer a `--resume` of a journal it deleted.
final class FolderLockTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")
    let lockName = ".depthlens.lock"
    let refusalEnd = "; wait for it to finish, or choose another output folder with -o\n"

    func sample(_ folder: String, _ extra: [String] = []) -> [String] {
        ["sample", checkpoint, "--data", data, "--members", "48", "-o", folder] + extra
    }

    func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    func listing(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
    }

    /// Waits (up to two minutes, polling) until `condition` holds or `process` has ended.
    func wait(for process: Process, until condition: () -> Bool) {
        let end = Date().addingTimeInterval(120)
        while process.isRunning, !condition(), Date() < end { usleep(20_000) }
    }

    func finishedUnits(_ journal: String) -> Int {
        guard let text = try? String(contentsOfFile: journal, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { $0.hasPrefix("done\t") }.count
    }

    /// Two writers into one folder: the second, a `--resume` and another command are refused
    /// while the first runs; the first's journal and lock are untouched, and it finishes with
    /// the same files, byte for byte, as a run alone.
    func testASecondWriterIntoALiveRunsFolderIsRefusedAndNothingIsLost() throws {
        let root = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let alone = root.appendingPathComponent("alone").path, shared = root.appendingPathComponent("shared").path
        let reference = try CLI.run(sample(alone, ["--quiet"]))
        XCTAssertEqual(reference.status, 0, reference.stderr)

        let journal = "\(shared)/sample-progress.journal", lock = "\(shared)/\(lockName)"
        // Three units, each followed by a 4 s pause: the others are tried during the pauses.
        let (first, firstErr) = try CLI.start(sample(shared, ["--quiet"]), environment: ["DEPTHLENS_TEST_UNIT_PAUSE_MS": "4000"])
        defer { if first.isRunning { first.terminate() } }
        wait(for: first) { finishedUnits(journal) >= 1 }
        XCTAssertTrue(first.isRunning, "the first run ended before it saved a unit")
        let pid = first.processIdentifier
        let lockText = try XCTUnwrap(contents(lock).map { String(decoding: $0, as: UTF8.self) }, "no lock file in \(shared)")
        XCTAssertTrue(lockText.hasPrefix("pid \(pid)\ncommand depthlens sample\nstarted "), lockText)
        let journalBefore = try XCTUnwrap(contents(journal))

        let refusalStart = "Error: \(shared): the folder is in use by another run (pid \(pid), depthlens sample, started "
        let others: [(String, [String])] = [
            ("the same command", sample(shared, ["--quiet"])),
            ("--resume", sample(shared, ["--quiet", "--resume"])),
            ("report", ["report", checkpoint, "--data", data, "--quiet", "-o", shared]),
            ("paths", ["paths", checkpoint, "--quiet", "-o", shared]),
        ]
        for (name, arguments) in others {
            let second = try CLI.run(arguments)
            XCTAssertEqual(second.status, 1, "\(name): \(second.stderr)")
            XCTAssertTrue(second.stderr.hasPrefix(refusalStart), "\(name): \(second.stderr)")
            XCTAssertTrue(second.stderr.hasSuffix(refusalEnd), "\(name): \(second.stderr)")
            XCTAssertEqual(second.stderr.filter { $0 == "\n" }.count, 1, "\(name): one line: \(second.stderr)")
            // Nothing in the folder was touched: the lock, the journal so far, no other file.
            XCTAssertEqual(try listing(shared), [lockName, "sample-progress.journal"], name)
            XCTAssertEqual(contents(lock).map { String(decoding: $0, as: UTF8.self) }, lockText, name)
            let journalNow = try XCTUnwrap(contents(journal), "\(name) deleted the live run's journal")
            XCTAssertEqual(journalNow.prefix(journalBefore.count), journalBefore, "\(name) changed the live run's journal")
        }
        XCTAssertTrue(first.isRunning, "the first run ended before the others were tried, so their refusal proves nothing")

        first.waitUntilExit()
        let message = String(decoding: firstErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(first.terminationReason, .exit, message)
        XCTAssertEqual(first.terminationStatus, 0, message)
        let names = try listing(alone)
        XCTAssertEqual(try listing(shared), names, "the journal and the lock file are gone, the results are there")
        for name in names {
            XCTAssertEqual(contents("\(shared)/\(name)"), contents("\(alone)/\(name)"), "\(name) differs from a run alone")
        }
    }

    /// A lock held by any live process (here the test itself) refuses a run without a
    /// timing assumption; the folder's files, an interrupted run's journal among them, are
    /// untouched. Once the lock is released, the run proceeds.
    func testAHeldLockRefusesARunAndLeavesTheFolderAsItWas() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let lock = folder.appendingPathComponent(lockName).path
        let descriptor = open(lock, O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        XCTAssertEqual(flock(descriptor, LOCK_EX | LOCK_NB), 0)
        let holder = "pid \(getpid())\ncommand depthlens report\nstarted 2026-12-01T09:00:00Z\n"
        XCTAssertEqual(write(descriptor, holder, holder.utf8.count), holder.utf8.count)
        let journal = "depthlens-progress v1\nanalysis\tsample\n\nunit\tx/0\t1\npayload\ndone\tx/0\n"
        try journal.write(toFile: folder.appendingPathComponent("sample-progress.journal").path, atomically: false, encoding: .utf8)
        try "old\n".write(toFile: folder.appendingPathComponent("sample-results.csv").path, atomically: false, encoding: .utf8)
        let before = try listing(folder.path).map { ($0, contents("\(folder.path)/\($0)")) }

        for extra in [[], ["--resume"]] {
            let refused = try CLI.run(sample(folder.path, ["--quiet"] + extra))
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertEqual(refused.stderr, "Error: \(folder.path): the folder is in use by another run (pid \(getpid()), depthlens report, started 2026-12-01T09:00:00Z)" + refusalEnd)
            let after = try listing(folder.path).map { ($0, contents("\(folder.path)/\($0)")) }
            XCTAssertEqual(after.map(\.0), before.map(\.0), "files were added or removed")
            for ((name, a), (_, b)) in zip(before, after) { XCTAssertEqual(a, b, "\(name) changed") }
        }

        close(descriptor)
        try FileManager.default.removeItem(atPath: folder.appendingPathComponent("sample-progress.journal").path)
        let proceeds = try CLI.run(sample(folder.path, ["--quiet"]))
        XCTAssertEqual(proceeds.status, 0, proceeds.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: lock), "the lock file is removed at the end")
    }

    /// A lock file naming a process that has ended (written by hand here, as a killed run
    /// leaves it) does not block: the run says whose it was and proceeds.
    func testAStaleLockFileDoesNotBlockARun() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let dead = ended.processIdentifier
        let lock = folder.appendingPathComponent(lockName).path
        try "pid \(dead)\ncommand depthlens sample\nstarted 2026-01-02T03:04:05Z\n".write(toFile: lock, atomically: false, encoding: .utf8)

        let run = try CLI.run(["sample", checkpoint, "--data", data, "--members", "4", "-o", folder.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("depthlens: \(folder.path): a previous run (pid \(dead), depthlens sample, started 2026-01-02T03:04:05Z) ended without cleaning up; its lock file is taken over\n"),
                      run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("sample-results.csv").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: lock), "the lock file is removed at the end")
    }

    /// SIGTERM before the first unit: the empty journal is deleted, so the message does not
    /// point to --resume, and indeed nothing is left to resume.
    func testSIGTERMBeforeTheFirstUnitDoesNotOfferAResume() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = folder.appendingPathComponent("sample-progress.journal").path
        // The run waits before its first unit (until signalled) once its journal exists.
        let (process, err) = try CLI.start(sample(folder.path, ["--quiet"]), environment: ["DEPTHLENS_TEST_START_PAUSE_MS": "300000"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        wait(for: process) { FileManager.default.fileExists(atPath: journal) }
        XCTAssertTrue(process.isRunning, "the run ended before it was signalled")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationReason, .exit, message)
        XCTAssertEqual(process.terminationStatus, 128 + SIGTERM, message)
        XCTAssertEqual(message, "\nsample: interrupted by SIGTERM before any unit finished; nothing was saved; run the same command to start again\n")
        XCTAssertEqual(try listing(folder.path), [], "neither the journal nor the lock file is left")
        let resume = try CLI.run(sample(folder.path, ["--quiet", "--resume"]))
        XCTAssertEqual(resume.status, 1, resume.stderr)
        XCTAssertTrue(resume.stderr.contains("nothing to resume"), resume.stderr)
    }
}
