import DepthLens
import Foundation
import XCTest

/// `depthlens compare A.h5 B.h5 ...` and `depthlens report A.h5 B.h5 ...`: every part of the
/// report on every checkpoint, paired (the same seeded sub-networks on each, in every
/// adaptive round), one tidy CSV with a `checkpoint` column, paired differences against the
/// first checkpoint, overlay plots, and a journal that resumes to the same bytes.
final class ComparisonCLITests: XCTestCase {
    let a = CLI.fixture("golden/official.ckpt.h5"), b = CLI.fixture("golden/preact-avgpool.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// The blocks each mask of a masks file turns off (gate 0), by mask key: the same on
    /// two checkpoints when their sub-networks are paired, whatever the gate values of the
    /// kept blocks (p_l under the expectation rule, 1 / p_l for sampled inverted ones).
    func deletedBlocks(_ path: String) throws -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for mask in try CLI.records(path) {
            out[mask["mask"]!] = mask["gates"]!.split(separator: " ").enumerated().filter { Double($0.element) == 0 }.map { $0.offset + 1 }
        }
        return out
    }

    /// Trial errors of `configuration`-prefixed rows (`k-3-trial-`, `depth-2-trial-`) of one checkpoint, by trial.
    func trialErrors(_ records: [[String: String]], checkpoint: String, prefix: String) -> [Int: Double] {
        var out: [Int: Double] = [:]
        for row in records where row["checkpoint"] == checkpoint && row["metric"] == "accuracy" && row["configuration"]!.hasPrefix(prefix) {
            out[Int(row["trial"]!)!] = 1 - Double(row["value"]!)!
        }
        return out
    }

    func testCompareRunsEveryPartOnTheSameSubNetworksOfEveryCheckpointIntoOneCSV() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["compare", a, b, "--data", data, "-o", folder.path, "--quiet", "--max-k", "3", "--trials", "3", "--members", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try CLI.records(folder.appendingPathComponent("compare-results.csv").path)
        XCTAssertEqual(Set(records.map { $0["checkpoint"]! }), [a, b])
        for checkpoint in [a, b] {
            let rows = records.filter { $0["checkpoint"] == checkpoint }
            XCTAssertEqual(Set(rows.map { $0["analysis"]! }), ["lesion", "ensemble", "depth", "paths"], checkpoint)
            XCTAssertEqual(Set(rows.compactMap { $0["metric"] == "mcnemar_p" ? $0["block"] : nil }).count, 6, checkpoint)
            XCTAssertEqual(Set(rows.compactMap { $0["analysis"] == "lesion" && $0["member"] == "over-trials" && $0["metric"] == "mean_error" ? $0["k"] : nil }),
                           ["0", "1", "2", "3"], checkpoint)
            XCTAssertEqual(Set(rows.compactMap { $0["analysis"] == "depth" && $0["member"] == "over-trials" && $0["metric"] == "mean_error" ? $0["k"] : nil }),
                           Set((0...6).map(String.init)), "the depth part: every depth of 6 blocks (9 steps)")
            XCTAssertEqual(Set(rows.compactMap { $0["analysis"] == "ensemble" && $0["member"] == "ensemble" && $0["metric"] == "accuracy" ? $0["k"] : nil }),
                           ["1", "2", "4"], "the ensemble part: 1, 2, 4 members")
        }
        // Paired: block l, trial t of k, trial t of depth d and ensemble member m turn off the
        // same blocks on both checkpoints (they share the schedule, so the ensemble's draws coincide).
        let (da, db) = (try deletedBlocks(folder.appendingPathComponent("compare-masks-official.ckpt.csv").path),
                        try deletedBlocks(folder.appendingPathComponent("compare-masks-preact-avgpool.ckpt.csv").path))
        XCTAssertEqual(da, db)
        for key in ["drop-3", "k-2-trial-1", "depth-2-trial-0", "member-3"] { XCTAssertNotNil(da[key], key) }
        XCTAssertTrue(da.keys.contains { $0.hasPrefix("depth-") } && da.keys.contains { $0.hasPrefix("member-") })
        let expected = ["compare-single-block.svg", "compare-k-blocks.svg", "compare-k-blocks-difference.svg", "compare-ensemble-error.svg",
                        "compare-ensemble-nll.svg", "compare-ensemble-ece.svg", "compare-depth.svg", "compare-depth-difference.svg", "compare-paths.svg"]
        for plot in expected {
            let svg = try String(contentsOfFile: folder.appendingPathComponent(plot).path, encoding: .utf8)
            XCTAssertTrue(svg.contains("official.ckpt") && svg.contains("preact-avgpool.ckpt"), "\(plot) names both checkpoints")
            XCTAssertEqual(try PlotRenderingTests.textOutsideCanvas(svg), [], plot)
        }
        let summary = try String(contentsOfFile: folder.appendingPathComponent("summary.md").path, encoding: .utf8)
        XCTAssertTrue(summary.contains("| | `official.ckpt` | `preact-avgpool.ckpt` |"), summary)
        let page = try String(contentsOfFile: folder.appendingPathComponent("index.html").path, encoding: .utf8)
        XCTAssertEqual(page.components(separatedBy: "<svg ").count - 1, expected.count, "index.html embeds every plot")
    }

    /// Each checkpoint's rows are what the single-checkpoint analysis gives it: sharing a
    /// journal (and the reference gates, same schedule and rule) does not mix the networks' units.
    func testEachCheckpointsRowsAreThoseOfItsOwnAnalysis() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let compared = try CLI.run(["compare", a, b, "--data", data, "-o", folder.appendingPathComponent("c").path, "--quiet", "--max-k", "3",
                                    "--trials", "3", "--members", "2"])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        let records = try CLI.records(folder.appendingPathComponent("c/compare-results.csv").path)
        for checkpoint in [a, b] {
            let alone = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.appendingPathComponent("alone").path, "--quiet",
                                     "--single", "--random-k", "3", "--trials", "3", "--metric", "accuracy"])
            XCTAssertEqual(alone.status, 0, alone.stderr)
            let single = try CLI.records(folder.appendingPathComponent("alone/lesion-results.csv").path).filter { $0["metric"] == "accuracy" }
            XCTAssertGreaterThan(single.count, 10)
            for row in single {
                let mine = try XCTUnwrap(records.first { $0["checkpoint"] == checkpoint && $0["analysis"] == "lesion"
                    && $0["configuration"] == row["configuration"] && $0["metric"] == "accuracy" }, row["configuration"]!)
                XCTAssertEqual(mine["value"], row["value"], "\(checkpoint) \(row["configuration"]!)")
            }
            try FileManager.default.removeItem(at: folder.appendingPathComponent("alone"))
        }
        XCTAssertNotEqual(trialErrors(records, checkpoint: a, prefix: "k-2-trial-"), trialErrors(records, checkpoint: b, prefix: "k-2-trial-"),
                          "the two networks differ")
    }

    /// Adaptive trials: every round is paired, so every checkpoint gets the same trials of
    /// each k and depth; a k stops only once every checkpoint's interval is narrow enough.
    /// The paired difference is the mean of the per-trial differences, with a percentile
    /// bootstrap over the pairs, and equals the difference of the two means.
    func testAdaptiveRoundsArePairedAndTheDifferenceIsOverThePairedTrials() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let width = 0.03, most = 30
        let result = try CLI.run(["compare", a, b, "--data", data, "-o", folder.path, "--quiet", "--max-k", "5", "--members", "2",
                                  "--ci-width", "\(width)", "--max-trials", "\(most)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try CLI.records(folder.appendingPathComponent("compare-results.csv").path)
        var laterRounds = 0
        for (analysis, prefix, stream, xs) in [("lesion", "k-", 7_000_000, 1...4), ("depth", "depth-", 8_000_000, 1...5)] {
            for x in xs {
                let (ea, eb) = (trialErrors(records, checkpoint: a, prefix: "\(prefix)\(x)-trial-"), trialErrors(records, checkpoint: b, prefix: "\(prefix)\(x)-trial-"))
                XCTAssertEqual(Set(ea.keys), Set(eb.keys), "\(analysis) \(x): the same trials on both")
                XCTAssertEqual(Set(ea.keys), Set(0..<ea.count), "\(analysis) \(x): trials 0...n-1")
                XCTAssertTrue(ea.count % 10 == 0 || ea.count == most, "\(analysis) \(x): rounds of 10, found \(ea.count)")
                if ea.count > 10 { laterRounds += 1 }
                func summary(_ checkpoint: String, _ metric: String) throws -> [String: String] {
                    try XCTUnwrap(records.first { $0["checkpoint"] == checkpoint && $0["analysis"] == analysis && $0["configuration"] == "\(prefix)\(x)"
                        && $0["metric"] == metric }, "\(analysis) \(x) \(metric)")
                }
                if ea.count < most {
                    for checkpoint in [a, b] {
                        let mean = try summary(checkpoint, "mean_error")
                        XCTAssertLessThanOrEqual(Double(mean["ci_high"]!)! - Double(mean["ci_low"]!)!, width + 1e-12,
                                                 "\(analysis) \(x): stopped before --max-trials only when every checkpoint's interval is narrow")
                    }
                }
                let difference = try summary(b, "mean_error_difference")
                XCTAssertEqual(difference["versus"], a)
                XCTAssertEqual(difference["method"], "bootstrap-percentile-paired")
                XCTAssertEqual(difference["n"], "\(ea.count)")
                let differences = (0..<ea.count).map { eb[$0]! - ea[$0]! }
                let bootstrap = Statistics.bootstrap(differences, seed: 0, stream: stream + x).mean
                XCTAssertEqual(Double(difference["value"]!)!, differences.reduce(0, +) / Double(differences.count), accuracy: 1e-12)
                XCTAssertEqual(Double(difference["ci_low"]!)!, bootstrap.low, accuracy: 1e-12)
                XCTAssertEqual(Double(difference["ci_high"]!)!, bootstrap.high, accuracy: 1e-12)
                XCTAssertEqual(Double(difference["value"]!)!, Double(try summary(b, "mean_error")["value"]!)! - Double(try summary(a, "mean_error")["value"]!)!,
                               accuracy: 1e-12, "paired: the mean difference is the difference of the means")
                XCTAssertNil(records.first { $0["checkpoint"] == a && $0["metric"] == "mean_error_difference" }, "the first checkpoint is the reference")
            }
        }
        XCTAssertGreaterThan(laterRounds, 0, "some k or depth needed a second round, which was paired too")
    }

    func testReportWithSeveralCheckpointsWritesTheComparisonInReportsLayout() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["report", a, b, "--data", data, "-o", folder.path, "--quiet", "--max-k", "2", "--trials", "2", "--members", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
        for part in ["lesion", "ensemble", "depth", "paths"] {
            XCTAssertTrue(files.contains("\(part)-results.csv"), part)
            let records = try CLI.records(folder.appendingPathComponent("\(part)-results.csv").path)
            XCTAssertEqual(Set(records.map { $0["checkpoint"]! }), [a, b], part)
            XCTAssertEqual(Set(records.map { $0["analysis"]! }), [part])
        }
        for part in ["lesion", "ensemble", "depth"] {
            XCTAssertEqual(try deletedBlocks(folder.appendingPathComponent("\(part)-masks-official.ckpt.csv").path),
                           try deletedBlocks(folder.appendingPathComponent("\(part)-masks-preact-avgpool.ckpt.csv").path), part)
        }
        XCTAssertFalse(files.contains("compare-results.csv"))
        let summary = try String(contentsOfFile: folder.appendingPathComponent("summary.md").path, encoding: .utf8)
        for heading in ["## Deterministic network", "## Deleting one block", "## Deleting k random blocks", "## Monte Carlo ensemble", "## Error against the number of active blocks", "## Paths"] {
            XCTAssertTrue(summary.contains(heading), "summary.md lacks \(heading)")
        }
        XCTAssertTrue(summary.contains("`preact-avgpool.ckpt` - `official.ckpt` [95% CI]"), summary)
        let page = try String(contentsOfFile: folder.appendingPathComponent("index.html").path, encoding: .utf8)
        let plots = files.filter { $0.hasSuffix(".svg") }
        XCTAssertTrue(plots.contains("compare-depth.svg") && plots.contains("compare-ensemble-error.svg"), "\(plots)")
        XCTAssertEqual(page.components(separatedBy: "<svg ").count - 1, plots.count, "index.html embeds every plot")
        // --json: every part of every checkpoint.
        let json = try CLI.run(["report", a, b, "--data", data, "-o", folder.appendingPathComponent("json").path, "--quiet", "--max-k", "1",
                                "--trials", "2", "--members", "2", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let checkpoints = try XCTUnwrap(document["checkpoints"] as? [[String: Any]])
        XCTAssertEqual(checkpoints.map { $0["checkpoint"] as? String }, [a, b])
        for part in ["lesion", "ensemble", "depth", "paths"] { XCTAssertNotNil(checkpoints[1][part] as? [String: Any], part) }
    }

    /// Checkpoints that cannot be paired are refused before any work, naming both files and
    /// what differs; flags a comparison cannot honour are refused with exit 64.
    func testIncompatibleCheckpointsAndUnsupportedFlagsAreRefusedNamingTheProblem() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let threeBlocks = CLI.fixture("golden/projection-nobias.ckpt.h5"), fiveClasses = CLI.fixture("compare/official-5-classes.ckpt.h5")
        let threeChannels = CLI.fixture("golden/projection.ckpt.h5")
        for command in ["compare", "report"] {
            for (other, fragment) in [(threeBlocks, "has 3 blocks and \(a) 6: a comparison runs the same sub-networks on the same images on each checkpoint, so it needs the same number of blocks"),
                                      (fiveClasses, "has 5 classes and \(a) 7"), (threeChannels, "has 3 input channels and \(a) 1")] {
                let out = folder.appendingPathComponent("\(command)-refused").path
                let refused = try CLI.run([command, a, other, "--data", data, "-o", out, "--quiet"])
                XCTAssertEqual(refused.status, 1, refused.stderr)
                XCTAssertTrue(refused.stderr.contains("\(other) \(fragment)"), refused.stderr)
                XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, "one line: \(refused.stderr)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is created")
            }
            for (arguments, fragment) in [([a, b, "--shard", "1/2"], "--shard: \(command) of several checkpoints does not shard"),
                                          ([a, a], "\(a): this checkpoint is given twice")] {
                let out = folder.appendingPathComponent("\(command)-flags").path
                let refused = try CLI.run([command] + arguments + ["--data", data, "-o", out, "--quiet"])
                XCTAssertEqual(refused.status, 64, refused.stderr)
                XCTAssertTrue(refused.stderr.contains(fragment), refused.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is created")
            }
        }
        let one = try CLI.run(["compare", a])
        XCTAssertEqual(one.status, 64)
        XCTAssertTrue(one.stderr.contains("compare needs at least two checkpoints"), one.stderr)
        // A dry run plans every checkpoint's work and writes nothing.
        let out = folder.appendingPathComponent("dry").path
        let dry = try CLI.run(["compare", a, b, "--data", data, "-o", out, "--max-k", "2", "--trials", "2", "--members", "2", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("compare of 2 checkpoints: dry run"), dry.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a dry run writes nothing")
    }

    /// Finished units in a progress journal.
    func finishedUnits(_ path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").filter { $0.hasPrefix("done\t") }.count
    }

    /// An interrupted comparison (adaptive trials, every part) resumes with --resume to the
    /// bytes of an uninterrupted one; a checkpoint changed in between is refused by name.
    func testInterruptedComparisonResumesByteIdentically() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        // A copy of the second checkpoint, to change it later.
        let second = folder.appendingPathComponent("second.h5").path
        try FileManager.default.copyItem(atPath: b, toPath: second)
        let whole = folder.appendingPathComponent("whole").path, parts = folder.appendingPathComponent("parts").path
        let base = ["compare", a, second, "--data", data, "--quiet", "--max-k", "4", "--members", "3", "--max-trials", "20", "--batch-size", "16"]
        let uninterrupted = try CLI.run(base + ["-o", whole])
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stderr)

        let journal = "\(parts)/compare-progress.journal"
        let (process, err) = try CLI.start(base + ["-o", parts], environment: ["DEPTHLENS_TEST_UNIT_PAUSE_MS": "300"])
        // Past the first checkpoint's single lesions: into the second's units.
        while process.isRunning && finishedUnits(journal) < 10 { usleep(20_000) }
        XCTAssertTrue(process.isRunning, "the run ended before it could be signalled")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 130, message)
        XCTAssertTrue(message.contains("interrupted by SIGINT") && message.contains("--resume"), message)
        let saved = try String(contentsOfFile: journal, encoding: .utf8)
        XCTAssertTrue(saved.contains("\tcheckpoint-1.") && saved.contains("\tcheckpoint-2."), "units of both checkpoints are saved, apart")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parts), ["compare-progress.journal"])

        let refused = try CLI.run(base + ["-o", parts])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("finished unit(s) of an interrupted run; add --resume"), refused.stderr)

        // The second checkpoint replaced by another of the same shape: its saved units are stale.
        let original = try Data(contentsOf: URL(fileURLWithPath: second))
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.copyItem(atPath: a, toPath: second)
        let changed = try CLI.run(base + ["-o", parts, "--resume"])
        XCTAssertEqual(changed.status, 1, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("\(second) changed since the interrupted run read it"), changed.stderr)
        try original.write(to: URL(fileURLWithPath: second))

        let resumed = try CLI.run(base + ["-o", parts, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: whole).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parts).sorted(), names, "the journal is gone")
        for name in names where !name.hasPrefix(".") {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(whole)/\(name)")), try Data(contentsOf: URL(fileURLWithPath: "\(parts)/\(name)")),
                           "\(name) differs after resuming")
        }
    }
}
