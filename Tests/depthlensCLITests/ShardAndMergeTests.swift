import Foundation
import XCTest

/// `--shard K/N`, `depthlens merge`, `--dry-run` and `depthlens slurm --dry-run` through the
/// binary (docs/scale-out.md). The real Slurm cluster is tools/slurm/integration-test.sh's.
final class ShardAndMergeTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// The result files of a folder (hidden files and shard folders aside), by name.
    func results(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasPrefix(".") && !name.hasPrefix("shard-") {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)"))
        }
        return files
    }

    /// Runs `analysis` unsharded and as `shards` shards, merges them, and requires the same
    /// files, byte for byte. Returns the folder of the shards for further checks.
    @discardableResult
    func assertMergeEqualsUnshardedRun(_ analysis: String, _ arguments: [String], shards: Int = 3, folder: URL,
                                       file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let base = [analysis, checkpoint, "--data", data, "--quiet"] + arguments
        let name = "\(analysis)-\(UUID().uuidString.prefix(8))"
        let whole = folder.appendingPathComponent("\(name)-whole").path
        let sharded = folder.appendingPathComponent("\(name)-sharded").path
        let merged = folder.appendingPathComponent("\(name)-merged").path
        let run = try CLI.run(base + ["-o", whole])
        XCTAssertEqual(run.status, 0, run.stderr, file: file, line: line)
        for k in 1...shards {
            let shard = try CLI.run(base + ["-o", sharded, "--shard", "\(k)/\(shards)"])
            XCTAssertEqual(shard.status, 0, shard.stderr, file: file, line: line)
        }
        XCTAssertEqual(try results(sharded), [:], "a shard writes no results", file: file, line: line)
        let merge = try CLI.run(["merge", merged] + (1...shards).map { "\(sharded)/shard-\($0)-of-\(shards)" })
        XCTAssertEqual(merge.status, 0, merge.stderr, file: file, line: line)
        let expected = try results(whole), actual = try results(merged)
        XCTAssertEqual(actual.keys.sorted(), expected.keys.sorted(), "\(analysis): the same files", file: file, line: line)
        for (name, bytes) in expected where actual[name] != bytes {
            XCTFail("\(analysis): \(name) differs from the unsharded run's", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(merged)/\(analysis)-progress.journal"), "the merge's journal is removed",
                       file: file, line: line)
        return sharded
    }

    func testMergedShardsEqualTheUnshardedRunByteForByteForEveryAnalysis() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        try assertMergeEqualsUnshardedRun("sample", ["--members", "20"], folder: folder)
        try assertMergeEqualsUnshardedRun("lesion", ["--single", "--random-k", "3", "--trials", "4"], folder: folder)
        try assertMergeEqualsUnshardedRun("depth", ["--depths", "0-6", "--trials", "3"], folder: folder)
        try assertMergeEqualsUnshardedRun("reorder", ["--swaps", "0,1,2,4", "--trials", "3"], folder: folder)
        try assertMergeEqualsUnshardedRun("ensemble", ["--members", "4", "--batch-size", "8"], folder: folder)
        try assertMergeEqualsUnshardedRun("ensemble", ["--members", "3", "--granularity", "sample", "--batch-size", "8"],
                                          folder: folder)
        try assertMergeEqualsUnshardedRun("sample", ["--members", "6", "--recalibrate", "16", "--recalibration-data", data], folder: folder)
        // report: CSVs, masks, SVGs and summary.md (which holds no run time).
        try assertMergeEqualsUnshardedRun("report", ["--members", "3", "--trials", "2", "--max-k", "3", "--batch-size", "8"],
                                          shards: 4, folder: folder)
    }

    func testAShardContinuesItsJournalAndMoreShardsThanUnitsLeaveSomeEmpty() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["depth", checkpoint, "--data", data, "--quiet", "--depths", "2,4", "--trials", "1", "-o", folder.path]
        // Two sub-networks in eight shards: six shards have nothing to compute, and still finish.
        for k in 1...8 { XCTAssertEqual(try CLI.run(base + ["--shard", "\(k)/8"]).status, 0) }
        let again = try CLI.run(["depth", checkpoint, "--data", data, "--depths", "2,4", "--trials", "1", "-o", folder.path, "--shard", "1/8"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("(0 computed now)"), "a finished shard run again computes nothing: \(again.stderr)")
        let merge = try CLI.run(["merge", folder.appendingPathComponent("merged").path] + (1...8).map { folder.appendingPathComponent("shard-\($0)-of-8").path })
        XCTAssertEqual(merge.status, 0, merge.stderr)
    }

    func testMergeRefusesShardsOfAnotherRunMissingRepeatedOrUnfinishedShardsAndUnitsSavedTwice() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["sample", checkpoint, "--data", data, "--quiet", "--members", "20"]
        func shard(_ k: Int, of n: Int, into name: String, _ extra: [String] = []) throws {
            let run = try CLI.run(base + extra + ["-o", folder.appendingPathComponent(name).path, "--shard", "\(k)/\(n)"])
            XCTAssertEqual(run.status, 0, run.stderr)
        }
        func path(_ name: String, _ k: Int, _ n: Int) -> String { folder.appendingPathComponent("\(name)/shard-\(k)-of-\(n)").path }
        try shard(1, of: 2, into: "a")
        try shard(2, of: 2, into: "a")
        try shard(2, of: 2, into: "seed", ["--seed", "5"])
        try shard(2, of: 3, into: "three")
        let out = folder.appendingPathComponent("out").path
        func refused(_ shards: [String], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let merge = try CLI.run(["merge", out] + shards)
            XCTAssertEqual(merge.status, 1, merge.stderr, file: file, line: line)
            XCTAssertTrue(merge.stderr.contains(fragment), "expected '\(fragment)' in: \(merge.stderr)", file: file, line: line)
            XCTAssertEqual(merge.stderr.split(separator: "\n").count, 1, "one line: \(merge.stderr)", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused merge writes nothing", file: file, line: line)
        }
        try refused([path("a", 1, 2), path("seed", 2, 2)], "seed is '5' there, '0' in")
        try refused([path("a", 1, 2), path("three", 2, 3)], "shard 2/3 of a split into 3, but")
        try refused([path("a", 1, 2)], "shard(s) 2/2 missing")
        try refused([path("a", 1, 2), path("a", 1, 2)], "shard 1/2 is given twice")
        try refused([path("a", 1, 2), folder.path + "/nowhere"], "no such shard folder")

        // Unfinished: the shard's record of completion is gone, as if it were still running.
        let unfinished = path("a", 2, 2)
        let record = "\(unfinished)/shard-finished.tsv"
        let saved = try Data(contentsOf: URL(fileURLWithPath: record))
        try FileManager.default.removeItem(atPath: record)
        try refused([path("a", 1, 2), unfinished], "shard 2/2 is unfinished")
        try saved.write(to: URL(fileURLWithPath: record))

        // A unit of shard 1 appended to shard 2's journal: saved by two shards.
        let journal1 = try String(contentsOfFile: "\(path("a", 1, 2))/sample-progress.journal", encoding: .utf8)
        let firstUnit = journal1.components(separatedBy: "\n").drop { !$0.hasPrefix("unit\t") }
        let unitLines = Array(firstUnit.prefix { !$0.hasPrefix("done\t") }) + [firstUnit.first { $0.hasPrefix("done\t") }!]
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: "\(unfinished)/sample-progress.journal"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((unitLines.joined(separator: "\n") + "\n").utf8))
        try handle.close()
        try refused([path("a", 1, 2), unfinished], "is saved by two shards")
    }

    /// A shard journal whose record no longer matches its checksum (edited, or damaged on
    /// disk) is not merged as if the unit were missing: the merge names the shard, the
    /// record and the remedy, and the shard's rerun computes that unit again, after which the
    /// merge equals the unsharded run byte for byte (issue 23, point 5).
    func testMergeNamesADamagedRecordAndTheShardsRerunComputesItAgain() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["sample", checkpoint, "--data", data, "--members", "20"]
        let whole = folder.appendingPathComponent("whole").path, sharded = folder.appendingPathComponent("sharded").path
        XCTAssertEqual(try CLI.run(base + ["--quiet", "-o", whole]).status, 0)
        for k in 1...2 { XCTAssertEqual(try CLI.run(base + ["--quiet", "-o", sharded, "--shard", "\(k)/2"]).status, 0) }
        let shard1 = "\(sharded)/shard-1-of-2", journal = "\(sharded)/shard-1-of-2/sample-progress.journal"
        // One hex digit of the first payload line of the first unit, changed.
        var lines = try String(contentsOfFile: journal, encoding: .utf8).components(separatedBy: "\n")
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("unit\t") })
        let key = lines[header].split(separator: "\t")[1]
        var payload = Array(lines[header + 1])
        payload[payload.count - 1] = payload.last == "0" ? "1" : "0"
        lines[header + 1] = String(payload)
        try lines.joined(separator: "\n").write(toFile: journal, atomically: true, encoding: .utf8)

        let merged = folder.appendingPathComponent("merged").path
        let shards = [shard1, "\(sharded)/shard-2-of-2"]
        let refused = try CLI.run(["merge", merged] + shards)
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertEqual(refused.stderr, "Error: \(journal): shard 1/2 has 1 damaged unit record(s) (their checksums do not match: edited, or damaged on disk): \(key); run shard 1/2 again (the same command: it keeps its intact units and computes the damaged ones again), then merge\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged), "a refused merge writes nothing")

        let rerun = try CLI.run(base + ["-o", sharded, "--shard", "1/2"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stderr.contains("do not match their checksums (edited or damaged); they are computed again"), rerun.stderr)
        XCTAssertTrue(rerun.stderr.contains("(1 computed now)"), rerun.stderr)
        let merge = try CLI.run(["merge", merged, "--quiet"] + shards)
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertEqual(try results(merged), try results(whole), "the merge after the rerun equals the unsharded run")
    }

    func testShardIsValidatedBeforeAnythingRuns() throws {
        for (value, fragment) in [("5/4", "K must be between 1 and N (got 5/4)"), ("0/4", "K must be between 1 and N"),
                                  ("2/0", "the number of shards N must be at least 1"), ("two", "'two' is not K/N")] {
            let run = try CLI.run(["lesion", checkpoint, "--data", data, "--shard", value, "-o", "/nonexistent/never"])
            XCTAssertEqual(run.status, 64, run.stderr)
            XCTAssertTrue(run.stderr.contains("--shard: " + fragment), run.stderr)
        }
        let paths = try CLI.run(["paths", checkpoint, "--shard", "1/2"])
        XCTAssertEqual(paths.status, 64, paths.stderr)
        XCTAssertTrue(paths.stderr.contains("--shard"), paths.stderr)
    }

    func testShardsOfTrialAnalysesNeedAFixedTrialCount() throws {
        // Adaptive trials pick each round from earlier rounds' results, which no shard sees whole.
        for arguments in [["lesion", "--random-k", "2"], ["depth"], ["report"]] {
            let run = try CLI.run([arguments[0], checkpoint, "--data", data, "--shard", "1/2", "-o", "/nonexistent/never"]
                                  + arguments.dropFirst())
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("--shard needs --trials N"), run.stderr)
        }
        let fixed = try CLI.run(["depth", checkpoint, "--data", data, "--shard", "1/2", "--trials", "2", "--dry-run"])
        XCTAssertEqual(fixed.status, 0, fixed.stderr)
    }

    func testDryRunPrintsTheWorkInAllAndPerShardAndWritesNothing() throws {
        let folder = CLI.temporaryDirectory().appendingPathComponent("never")
        let run = try CLI.run(["lesion", checkpoint, "--data", data, "--single", "--dry-run", "--shard", "1/3", "-o", folder.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "a dry run creates no folder")
        // 6 blocks: the full network and each block alone.
        XCTAssertTrue(run.stdout.contains("In all: 7 sub-network evaluations over 48 images, 7 units"), run.stdout)
        for k in 1...3 { XCTAssertTrue(run.stdout.contains("| \(k)/3 |"), run.stdout) }
        let report = try CLI.run(["report", checkpoint, "--data", data, "--dry-run", "--members", "4", "-o", folder.path])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stdout.contains("ensemble members"), report.stdout)
        XCTAssertTrue(report.stdout.contains("| 4 |"), "a table of shard counts: \(report.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path))
    }

    func testSlurmDryRunPrintsTheArrayAndMergeScripts() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("study").path
        let run = try CLI.run(["slurm", "report", checkpoint, "--data", data, "--members", "4", "--trials", "2", "-o", out, "--tasks", "4",
                               "--partition", "gpu", "--time", "1:00:00", "--cpus-per-task", "8", "--account", "lab",
                               "--sbatch-option=--mem=16G", "--sbatch-option=qos=long", "--dry-run"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for line in ["#SBATCH --array=0-3", "#SBATCH --requeue", "#SBATCH --partition=gpu", "#SBATCH --time=1:00:00",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --account=lab", "#SBATCH --mem=16G", "#SBATCH --qos=long",
                     "--shard \"$((SLURM_ARRAY_TASK_ID + 1))/4\"", "--threads \"$SLURM_CPUS_PER_TASK\"",
                     " merge \(out) \(out)/shard-1-of-4 \(out)/shard-2-of-4 \(out)/shard-3-of-4 \(out)/shard-4-of-4",
                     "sbatch --parsable --dependency=afterok:<array job id> \(out)/slurm/merge.sbatch"] {
            XCTAssertTrue(run.stdout.contains(line), "expected '\(line)' in:\n\(run.stdout)")
        }
        let binary = CLI.productsDirectory.appendingPathComponent("depthlens").resolvingSymlinksInPath().path
        XCTAssertTrue(run.stdout.contains("exec \(binary) report "), "the jobs run this binary by its absolute path:\n\(run.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a dry run writes nothing")
        let bad = try CLI.run(["slurm", "report", checkpoint, "--tasks", "4", "--members", "0"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--members must be at least 1"), "the analysis' flags are checked before submitting: \(bad.stderr)")
        let shard = try CLI.run(["slurm", "lesion", checkpoint, "--tasks", "4", "--shard", "1/4"])
        XCTAssertEqual(shard.status, 64, shard.stderr)
    }

    /// Submission through a stand-in `sbatch` on PATH that records its arguments: the merge
    /// job depends on the array job's id.
    func testSlurmSubmitsTheArrayThenTheMergeAfterIt() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bin = folder.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let log = folder.appendingPathComponent("sbatch.log").path
        let fake = """
            #!/bin/sh
            echo "$@" >> '\(log)'
            if [ -f '\(log).first' ]; then echo '4243;cluster'; else touch '\(log).first'; echo 4242; fi

            """
        try fake.write(to: bin.appendingPathComponent("sbatch"), atomically: true, encoding: .utf8)
        chmod(bin.appendingPathComponent("sbatch").path, 0o755)
        let out = folder.appendingPathComponent("study").path
        let run = try CLI.run(["slurm", "sample", checkpoint, "--data", data, "-o", out, "--tasks", "2"],
                              environment: ["PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(calls, ["--parsable \(out)/slurm/array.sbatch", "--parsable --dependency=afterok:4242 \(out)/slurm/merge.sbatch"])
        XCTAssertTrue(run.stdout.contains("array job 4242"), run.stdout)
        XCTAssertTrue(run.stdout.contains("merge job 4243"), run.stdout)
        XCTAssertTrue(run.stdout.contains("scontrol requeue 4242_i"), run.stdout)
        let script = try String(contentsOfFile: "\(out)/slurm/array.sbatch", encoding: .utf8)
        XCTAssertTrue(script.contains("#SBATCH --array=0-1"), script)
    }
}
