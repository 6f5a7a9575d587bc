import Foundation
import XCTest

/// Every numeric (and count-like) flag of every command, given a bad value, is refused
/// before any work (issue 23, point 2): exit status 64, one message naming the flag, and no
/// output folder created. The same flag gets the same rule in every command that has it.
final class FlagValidationTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// (flag arguments, fragment of the message that names the flag and the rule).
    typealias BadValue = (arguments: [String], message: String)

    /// Flags every command that reads data has (DataOptions, RuntimeOptions).
    let dataAndRuntime: [BadValue] = [
        (["--offset=-1"], "--offset must be zero or positive"),
        (["--limit", "0"], "--limit must be positive"),
        (["--limit=-5"], "--limit must be positive"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--batch-size=-3"], "--batch-size must be positive"),
        (["--batch-size", "99999999999999999999"], "'99999999999999999999' is invalid for '--batch-size"),
        (["--threads", "0"], "--threads must be positive"),
        (["--threads", "two"], "'two' is invalid for '--threads"),
        (["--threads", "5000"], "--threads: 5000 worker threads asked; at most 4096 (this machine has"),
        (["--threads", "9223372036854775807"], "--threads: 9223372036854775807 worker threads asked; at most 4096"),
        (["--mean", "0.5", "--std", "0"], "--std: 0.0 is not positive"),
        (["--mean", "0.5", "--std=-1"], "--std: -1.0 is not positive"),
        (["--mean", "0.5", "--std", "1e-45"], "--std: normalising pixels in 0...1 with mean 0.5 and std 1e-45 gives values beyond the largest float"),
        (["--mean", "nan", "--std", "1"], "--mean: 'nan' is not a number"),
        (["--std", "1"], "Give --mean and --std together"),
    ]

    /// Flags every analysis has (AnalysisOptions).
    let analysis: [BadValue] = [
        (["--seed=-1"], "'-1' is invalid for '--seed"),
        (["-o", ""], "-o/--output: the folder name is empty"),
    ]

    /// Each command's own flags.
    let own: [String: [BadValue]] = [
        "sample": [(["--members", "0"], "--members must be at least 1"), (["--members=-1"], "--members must be at least 1"),
                   (["--members", "100000000000000"], "--members: 100000000000000 sub-networks need about"),
                   (["--recalibrate", "1"], "--recalibrate needs at least 2 images"),
                   (["--recalibration-data", "x.h5"], "--recalibration-data needs --recalibrate N")],
        "ensemble": [(["--members", "0"], "--members must be at least 1"), (["--members=-3"], "--members must be at least 1"),
                     (["--granularity", "example"], "'example' is invalid for '--granularity")],
        "lesion": [(["--trials", "0"], "--trials must be at least 1"), (["--random-k=-1"], "--random-k must be zero or more"),
                   (["--trials", "100000000000"], "--trials: 100000000000 trials per k need about"),
                   (["--random-k", "4", "--trials", "1000000000"], "--trials: 1000000000 trials per k need about"),
                   (["--prune-depth=-1"], "--prune-depth must be zero or more, found -1"),
                   (["--prune-depth", "3", "--prune-rule", "greedy", "--held-out", "0"], "--held-out must be at least 1, found 0"),
                   (["--drop", "3-x"], "--drop: '3-x' is not a block number"), (["--keep=-2"], "--keep: '-2' is not a block number"),
                   (["--recalibrate", "0"], "--recalibrate needs at least 2 images")],
        "depth": [(["--trials", "0"], "--trials must be at least 1"), (["--trials=-2"], "--trials must be at least 1"),
                  (["--trials", "100000000000000"], "--trials: 13 depths x 100000000000000 trials"),
                  (["--depths", "0,x"], "--depths: 'x' is not a block number")],
        "reorder": [(["--trials", "0"], "--trials must be at least 1"), (["--swaps", "1,-1"], "--swaps: '' is not a block number || --swaps: '-1'"),
                    (["--swaps", "100000000000000"], "--swaps: 100000000000000 random swaps asked; at most 1000000"),
                    (["--trials", "1000000000000"], "--trials: 6 numbers of swaps x 1000000000000 trials")],
        "report": [(["--max-k=-1"], "--max-k must be zero or more"), (["--trials", "0"], "--trials must be at least 1"),
                   (["--members", "0"], "--members must be at least 1"),
                   (["--trials", "100000000000000"], "--max-k, --trials: 19 values of k and depths x 100000000000000 trials")],
        // Given two checkpoints (as report with two below).
        "compare": [(["--max-k=-1"], "--max-k must be zero or more"), (["--trials", "0"], "--trials must be at least 1"),
                    (["--members", "0"], "--members must be at least 1"), (["--ci-width", "0"], "--ci-width must be in (0, 1]"),
                    (["--max-trials", "1"], "--max-trials must be at least 2"), (["--y-scale", "cubic"], "'cubic' is invalid for '--y-scale"),
                    (["--trials", "100000000000000"], "--max-k, --trials: 19 values of k and depths x 100000000000000 trials x 2 checkpoints"),
                    (["--max-trials", "100000000000000"], "--max-k, --trials: 19 values of k and depths x 100000000000000 trials x 2 checkpoints"),
                    (["--shard", "1/2"], "--shard: compare of several checkpoints does not shard")],
    ]

    /// A second checkpoint for the comparisons (compare, report with two).
    let second = CLI.fixture("golden/preact-avgpool.ckpt.h5")

    func testEveryBadFlagValueOfEveryCommandExits64NamingTheFlagBeforeAnyWork() throws {
        let root = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        var checked = 0
        func check(_ arguments: [String], _ message: String, folder: String?, file: StaticString = #filePath, line: UInt = #line) throws {
            let result = try CLI.run(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)", file: file, line: line)
            XCTAssertTrue(result.stderr.hasPrefix("Error: "), "\(arguments): \(result.stderr)", file: file, line: line)
            let alternatives = message.components(separatedBy: " || ")
            XCTAssertTrue(alternatives.contains { result.stderr.contains($0) }, "\(arguments): '\(result.stderr)' lacks '\(message)'", file: file, line: line)
            if let folder {
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder), "\(arguments) created its output folder", file: file, line: line)
            }
            checked += 1
        }
        for (command, flags) in own.sorted(by: { $0.key < $1.key }) {
            for bad in flags + dataAndRuntime + analysis {
                let folder = root.appendingPathComponent("\(command)-\(checked)").path
                let output = bad.arguments.contains("-o") ? [] : ["-o", folder]
                try check([command, checkpoint] + (command == "compare" ? [second] : []) + ["--data", data, "--quiet"] + output + bad.arguments,
                          bad.message, folder: folder)
            }
        }
        // report with several checkpoints: the comparison's rules, report's flags.
        for bad in own["report"]! + [(["--shard", "1/2"], "--shard: report of several checkpoints does not shard"),
                                     (["--trials", "100000000000000"], "x 100000000000000 trials x 2 checkpoints")] {
            let folder = root.appendingPathComponent("report-two-\(checked)").path
            try check(["report", checkpoint, second, "--data", data, "--quiet", "-o", folder] + bad.arguments, bad.message, folder: folder)
        }
        // Commands without an output folder: eval, predict (a file), bench.
        for bad in dataAndRuntime {
            try check(["eval", checkpoint, "--data", data] + bad.arguments, bad.message, folder: nil)
            let file = root.appendingPathComponent("p-\(checked).csv").path
            try check(["predict", checkpoint, "--data", data, "-o", file] + bad.arguments, bad.message, folder: file)
        }
        for bad: BadValue in [(["--gates", "1,x"], "--gates: entry 2 ('x') is not a finite number"), (["--drop", "2-1"], "--drop: '2-1' is not a block number"),
                              (["-o", "p.txt"], "--output must end in .csv, .h5 or .hdf5")] {
            try check(["predict", checkpoint, "--data", data] + bad.arguments, bad.message, folder: nil)
        }
        for bad: BadValue in [(["--repeats", "0"], "--repeats must be at least 1"), (["--batch-size", "0"], "--batch-size must be positive"),
                              (["--threads", "0"], "--threads must be positive"), (["--threads", "100000"], "--threads: 100000 worker threads asked; at most 4096"),
                              (["--images=-1"], "--images must be at least 1"), (["--backend", "gpu"], "--backend must be reference or fast")] {
            try check(["bench", checkpoint, "--data", data] + bad.arguments, bad.message, folder: nil)
        }
        // paths evaluates nothing: data and draw flags are refused rather than ignored.
        for bad: BadValue in [(["--limit", "5"], "--limit: paths evaluates no network"), (["--seed", "3"], "--seed: paths evaluates no network")] {
            let folder = root.appendingPathComponent("paths-\(checked)").path
            try check(["paths", checkpoint, "-o", folder] + bad.arguments, bad.message, folder: folder)
        }
        XCTAssertGreaterThanOrEqual(checked, 150)
        print("FlagValidationTests: \(checked) command x flag cases")
    }
}
