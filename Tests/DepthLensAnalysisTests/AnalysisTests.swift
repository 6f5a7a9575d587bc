import DepthLens
import DepthLensMetrics
import Foundation
import XCTest

/// Every analysis reproduces values computed independently in PyTorch and numpy/scipy
/// (tools/make_analysis_fixtures.py), with the same seeded gate masks.
final class AnalysisTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct Expected: Decodable {
        var analysis: String
        var configuration: String
        var k: Int?
        var metric: String
        var value: Double
        var dropped: [Int]?
    }

    static let expected: [Expected] = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("analyses/expected.json"))
        return try! JSONDecoder().decode([Expected].self, from: data)
    }()

    func context(_ variant: String, batchSize: Int = 16, threads: Int = 2) throws -> AnalysisContext {
        try Self.context(variant, batchSize: batchSize, threads: threads)
    }

    /// The fixture checkpoint `variant` on its 48 labelled images, seed 7, accuracy and NLL.
    static func context(_ variant: String, batchSize: Int = 16, threads: Int = 2) throws -> AnalysisContext {
        let checkpoint = try Checkpoint.load(from: Self.fixtures.appendingPathComponent("golden/\(variant).ckpt.h5").path)
        let source = try DataSetRequest(path: Self.fixtures.appendingPathComponent("analyses/\(variant)-labelled.h5").path)
            .open(for: checkpoint)
        let registry = PluginRegistry()
        BuiltinMetrics.register(in: registry)
        return AnalysisContext(checkpoint: checkpoint, evaluator: Evaluator(network: Network(checkpoint: checkpoint), threads: threads),
                               source: source, batchSize: batchSize, survival: checkpoint.training!.survivalProbabilities!,
                               scheduleName: "linear:pL=0.5", rule: .expectation, metrics: ["accuracy", "nll"],
                               registry: registry, seed: 7)
    }

    func assertMatches(_ table: ResultTable, analysis: String, configurations prefix: String = "", minimum: Int = 6,
                       file: StaticString = #filePath, line: UInt = #line) {
        let wanted = Self.expected.filter { $0.analysis == analysis && $0.configuration.hasPrefix(prefix) }
        XCTAssertGreaterThanOrEqual(wanted.count, minimum, file: file, line: line)
        for e in wanted {
            let row = table.rows.first { $0.configuration == e.configuration && $0.metric == e.metric && (e.k == nil || $0.k == Double(e.k!)) }
            guard let row else {
                XCTFail("\(analysis): no row for \(e.configuration) \(e.metric)", file: file, line: line)
                continue
            }
            XCTAssertEqual(row.value, e.value, accuracy: 1e-5, "\(analysis) \(e.configuration) \(e.metric)", file: file, line: line)
        }
    }

    func testLesionSingleAndRandomBlocks() throws {
        let context = try self.context("official")
        let lesions = LesionAnalysis.singleBlocks(count: 6) + LesionAnalysis.randomBlocks(count: 6, maxK: 3, trials: 2, seed: 7)
        let table = try LesionAnalysis.run(context, lesions: lesions)
        assertMatches(table, analysis: "lesion")
        // Lesions really change the outputs: the fixture is not degenerate.
        let likelihoods = Set(table.rows.filter { $0.metric == "nll" }.map(\.value))
        XCTAssertGreaterThan(likelihoods.count, 10)
    }

    func testSampleDepthAndEnsemble() throws {
        let context = try self.context("official")
        assertMatches(try SampleAnalysis.run(context, members: 4), analysis: "sample")
        assertMatches(try DepthAnalysis.run(context, depths: [0, 3, 6], trials: 2), analysis: "depth")
        let ensemble = try EnsembleAnalysis.run(context, members: 4, granularity: .pass)
        assertMatches(ensemble, analysis: "ensemble", configurations: "pass-")
        assertMatches(ensemble, analysis: "ensemble", configurations: "deterministic-", minimum: 2)
    }

    func testEnsemblesWithGatesPerBatchAndPerExample() throws {
        let context = try self.context("official", batchSize: 16)
        let batch = try EnsembleAnalysis.run(context, members: 4, granularity: .batch)
        let sample = try EnsembleAnalysis.run(context, members: 4, granularity: .sample)
        assertMatches(batch, analysis: "ensemble", configurations: "batch-")
        assertMatches(sample, analysis: "ensemble", configurations: "sample-")
        // Every gate behind the pooled rows is in the masks file: 4 members x 3 batches of
        // 16, and 4 members x 48 examples.
        XCTAssertEqual(batch.masks.filter { $0.key.hasPrefix("member-") && $0.key.contains("-batch-") }.count, 12)
        XCTAssertEqual(sample.masks.filter { $0.key.hasPrefix("member-") && $0.key.contains("-example-") }.count, 192)
        XCTAssertGreaterThan(Set(sample.masks.map(\.gates)).count, 20, "examples draw their own masks")
    }

    func testPruningRulesFollowLayerDrop() throws {
        let context = try self.context("official")
        let blocks = context.checkpoint.architecture.blocks
        let choices = Self.expected.filter { $0.analysis == "prune-choice" }
        XCTAssertEqual(choices.count, 5)
        var lesions: [LesionAnalysis.Lesion] = []
        for choice in choices {
            let rule = choice.configuration.hasPrefix("prune-every-other") ? "every-other" : "evenly-spaced"
            let lesion = try LesionAnalysis.prune(blocks: blocks, depth: Int(choice.value), rule: rule)
            XCTAssertEqual(lesion.name, choice.configuration)
            XCTAssertEqual(lesion.dropped, choice.dropped, "\(rule) to depth \(Int(choice.value))")
            lesions.append(lesion)
        }
        assertMatches(try LesionAnalysis.run(context, lesions: lesions, analysis: "prune"), analysis: "prune", minimum: 15)
        XCTAssertEqual(try LesionAnalysis.prune(blocks: blocks, depth: 3, rule: "every-other").dropped, [2, 4, 6],
                       "half the depth deletes every second block")
        XCTAssertThrowsError(try LesionAnalysis.prune(blocks: blocks, depth: 7, rule: "every-other")) {
            XCTAssertEqual($0 as? PruneError, .depthOutOfRange(7, allowed: 0...6))
            XCTAssertEqual("\($0)", "prune depth 7 is outside 0...6")
        }
        XCTAssertThrowsError(try LesionAnalysis.prune(blocks: blocks, depth: 3, rule: "random")) {
            XCTAssertEqual($0 as? PruneError, .unknownRule("random", known: ["every-other", "evenly-spaced", "greedy"]))
            XCTAssertEqual("\($0)", "unknown prune rule 'random' (every-other, evenly-spaced, greedy)")
        }
    }

    func testSampleAndDepthWithBatchNormRecalibration() throws {
        let context = try self.context("official")
        let images = try SubsetSource(context.source, offset: 0, limit: 20)
        let plain = try SampleAnalysis.run(context, members: 2)
        let recalibrated = try SampleAnalysis.run(context, members: 2, recalibration: images)
        XCTAssertEqual(recalibrated.masks.map(\.key), ["sample-0-recalibrated", "sample-1-recalibrated"])
        XCTAssertEqual(recalibrated.masks.map(\.gates), plain.masks.map(\.gates), "recalibration keeps the sub-networks")
        let before = plain.rows.filter { $0.metric == "nll" }.map(\.value)
        let after = recalibrated.rows.filter { $0.metric == "nll" }.map(\.value)
        XCTAssertEqual(after.count, 2)
        XCTAssertTrue(zip(before, after).allSatisfy { abs($0 - $1) > 1e-6 }, "new statistics change every member: \(before) \(after)")
        // Each recalibrated member equals evaluating its recalibrated checkpoint directly.
        let gates = recalibrated.masks[0].gates
        let checkpoint = try BatchNormRecalibration.recalibrate(context.checkpoint, gates: gates, source: images, batchSize: 16)
        var direct = context
        direct.evaluator = Evaluator(network: Network(checkpoint: checkpoint))
        let directNLL = try MemberEvaluation.run(direct, configurations: [gates])[0].first { $0.name == "nll" }!.value
        XCTAssertEqual(after[0], directNLL, accuracy: 1e-9)
        let depth = try DepthAnalysis.run(context, depths: [4], trials: 1, recalibration: images)
        XCTAssertEqual(depth.masks.map(\.key), ["depth-4-trial-0-recalibrated", "deterministic-expectation"],
                       "the deterministic network, the depth plot's reference, is not recalibrated")
    }

    func testGreedyPruningChoosesOnHeldOutImagesLikeLayerDrop() throws {
        var context = try self.context("official")
        let heldOut = try SubsetSource(context.source, offset: 0, limit: 24)
        let dropped = try GreedyPrune.choose(context, heldOut: heldOut, depth: 3)
        XCTAssertEqual(dropped, Self.expected.first { $0.analysis == "greedy-choice" }?.dropped)
        context.source = try SubsetSource(context.source, offset: 24, limit: nil)
        let table = try LesionAnalysis.run(context, lesions: [.init(.pruned(rule: "greedy", depth: 3), dropped: dropped)], analysis: "greedy")
        assertMatches(table, analysis: "greedy", minimum: 3)
        XCTAssertThrowsError(try GreedyPrune.choose(context, heldOut: heldOut, depth: 1)) {
            XCTAssertTrue("\($0)".contains("the depth must be in 2...6"), "\($0)")
        }
    }

    func testReorderAgainstKendallTau() throws {
        assertMatches(try ReorderAnalysis.run(try context("port-subsample"), swaps: [0, 1, 3], trials: 2), analysis: "reorder")
    }

    func testPathsAreExact() throws {
        let p = try Checkpoint.load(from: Self.fixtures.appendingPathComponent("golden/official.ckpt.h5").path).training!.survivalProbabilities!
        let table = PathsAnalysis.run(survival: p, checkpoint: "x", schedule: "linear")
        for e in Self.expected where e.analysis == "paths" {
            let row = table.rows.first { $0.configuration == e.configuration && $0.k == Double(e.k!) && $0.metric == "probability" }
            XCTAssertEqual(row?.value ?? .nan, e.value, accuracy: 1e-12, "\(e.configuration) k=\(e.k!)")
        }
        XCTAssertEqual(PathDistribution.poissonBinomial(p).reduce(0, +), 1, accuracy: 1e-12)
        XCTAssertEqual(PathDistribution.unrolledBinomial(blocks: 110).reduce(0, +), 1, accuracy: 1e-9, "no overflow at large L")
    }

    func testSameSeedGivesIdenticalCSVForAnyBatchSizeAndThreadCount() throws {
        let a = try EnsembleAnalysis.run(try context("official", batchSize: 5, threads: 1), members: 3, granularity: .sample)
        let b = try EnsembleAnalysis.run(try context("official", batchSize: 48, threads: 3), members: 3, granularity: .sample)
        XCTAssertEqual(a.resultsCSV, b.resultsCSV)
        XCTAssertEqual(a.masksCSV, b.masksCSV)
        let c = try SampleAnalysis.run(try context("official", batchSize: 7, threads: 1), members: 5)
        let d = try SampleAnalysis.run(try context("official", batchSize: 16, threads: 2), members: 5)
        XCTAssertEqual(c.resultsCSV, d.resultsCSV)
        XCTAssertEqual(c.masksCSV, d.masksCSV)
        var other = try context("official")
        other.seed = 8
        XCTAssertNotEqual(try SampleAnalysis.run(other, members: 5).masksCSV, c.masksCSV, "another seed draws other masks")
    }

    func testResultsCSVIsTidyAndEveryRowTracesToAMask() throws {
        let table = try SampleAnalysis.run(try context("official"), members: 3)
        let lines = table.resultsCSV.split(separator: "\n")
        // No block column: sample rows have none, and a column every row leaves empty is left out.
        XCTAssertEqual(lines.first, "analysis,checkpoint,schedule,experiment,configuration,member,k,metric,value,mask,seed,trial")
        XCTAssertTrue(lines.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 12 })
        let masks = Set(table.masks.map(\.key))
        XCTAssertTrue(table.rows.allSatisfy { masks.contains($0.mask) })
        XCTAssertTrue(table.masksCSV.hasPrefix("mask,order,gates\nsample-0,,"))
    }

    func testBadAnalysisInputsAreNamed() throws {
        let context = try self.context("official")
        XCTAssertThrowsError(try LesionAnalysis.run(context, lesions: [.init(.dropList("9"), dropped: [9])])) {
            XCTAssertEqual($0 as? BlockSelectionError, .noSuchBlock(9, blockCount: 6))
            XCTAssertEqual("\($0)", "block 9 does not exist; the network has blocks 1...6")
        }
        XCTAssertThrowsError(try DepthAnalysis.run(context, depths: [7], trials: 1)) {
            XCTAssertEqual($0 as? BlockSelectionError, .depthOutOfRange(7, blockCount: 6))
            XCTAssertEqual("\($0)", "depth 7 is outside 0...6")
        }
        XCTAssertThrowsError(try EnsembleAnalysis.run(context, members: 0, granularity: .pass)) {
            XCTAssertEqual($0 as? EnsembleError, .tooFewMembers(0))
            XCTAssertTrue("\($0)".contains("at least one member"), "\($0)")
        }
        var badMetric = context
        badMetric.metrics = ["acuracy"]
        XCTAssertThrowsError(try SampleAnalysis.run(badMetric, members: 2)) {
            XCTAssertTrue("\($0)".contains("unknown metric"), "\($0)")
        }
    }
}

/// Batch-norm recalibration re-estimates running statistics exactly as PyTorch's train-mode
/// passes with `momentum=None` do (tools/make_analysis_fixtures.py).
final class BatchNormRecalibrationTests: XCTestCase {
    func testRecalibratedLogitsMatchPyTorch() throws {
        let fixtures = AnalysisTests.fixtures
        let file = try HDF5File.open(fixtures.appendingPathComponent("analyses/recalibration.h5").path).root
        for variant in ["official", "preact-projection"] {
            let group = try file.group(variant)
            let checkpoint = try Checkpoint.load(from: fixtures.appendingPathComponent("golden/\(variant).ckpt.h5").path)
            let path = fixtures.appendingPathComponent("analyses/recalibration.h5").path
            let train = try HDF5ImageSource(path: path, imagesDataset: "\(variant)/train_images", labelsDataset: nil)
            let gates = try group.dataset("gates").readFloats()
            let recalibrated = try BatchNormRecalibration.recalibrate(checkpoint, gates: gates, source: train, batchSize: 8)
            let test = try HDF5ImageSource(path: path, imagesDataset: "\(variant)/test_images", labelsDataset: nil)
            let logits = try Evaluator(network: Network(checkpoint: recalibrated)).logits(try test.batch(0..<test.count), gates: .shared(gates))
            let expected = try group.dataset("logits").readFloats()
            let worst = zip(logits.scalars, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(variant): max |logit difference| \(worst)")
            // The statistics really moved: the plain network gives other logits.
            let before = try Evaluator(network: Network(checkpoint: checkpoint)).logits(try test.batch(0..<test.count), gates: .shared(gates))
            XCTAssertGreaterThan(zip(before.scalars, expected).map { abs($0 - $1) }.max()!, 1e-2, variant)
        }
    }
}

/// The standard plots show what the rows say.
final class AnalysisPlotTests: XCTestCase {
    func testRandomLesionPlotStartsAtTheFullNetworkAndKeepsBandsInsideValidErrors() throws {
        var table = ResultTable(checkpoint: "c", schedule: "s", seed: 0)
        table.append(ResultRow(analysis: "lesion", experiment: .fullNetwork, member: .deterministic, k: 0, metric: "accuracy", value: 0.9))
        for (trial, accuracy) in [0.95, 0.1, 0.12].enumerated() {
            table.append(ResultRow(analysis: "lesion", experiment: .randomLesion(k: 3, trial: trial), member: .deterministic, k: 3,
                                   metric: "accuracy", value: accuracy))
        }
        let plot = try XCTUnwrap(AnalysisPlots.plots(for: table).first { $0.file == "lesion-k-blocks.svg" }?.plot)
        let series = try XCTUnwrap(plot.series.first)
        XCTAssertEqual(series.points.map(\.x), [0, 3])
        XCTAssertEqual(series.points[0].y, 0.1, accuracy: 1e-12, "k = 0 is the full network's error")
        XCTAssertEqual(series.points[1].y, 1 - (0.95 + 0.1 + 0.12) / 3, accuracy: 1e-12)
        let band = try XCTUnwrap(series.band?.last)
        XCTAssertEqual(band.high, 1, "mean + sd exceeds 1 here and is cut to 1")
        XCTAssertGreaterThanOrEqual(band.low, 0)
        XCTAssertLessThan(band.low, series.points[1].y)
    }

    func testSingleBlockAndPrunePlotsSelectRowsByExperiment() throws {
        var table = ResultTable(checkpoint: "c", schedule: "s", seed: 0)
        let rows: [(Experiment, Double, Double)] = [(.fullNetwork, 0, 0.9), (.singleLesion(block: 2), 1, 0.8),
                                                   (.dropList("7"), 1, 0.5), (.keepList("1-3"), 3, 0.4),
                                                   (.pruned(rule: "every-other", depth: 4), 2, 0.7)]
        for (experiment, k, accuracy) in rows {
            table.append(ResultRow(analysis: "lesion", experiment: experiment, member: .deterministic, k: k, metric: "accuracy", value: accuracy))
        }
        let plots = AnalysisPlots.plots(for: table)
        let single = try XCTUnwrap(plots.first { $0.file == "lesion-single-block.svg" }?.plot)
        XCTAssertEqual(single.series.first?.points.map(\.x), [2], "only single lesions, at their block")
        XCTAssertEqual(single.reference?.y ?? .nan, 0.1, accuracy: 1e-12, "the full network's error")
        let prune = try XCTUnwrap(plots.first { $0.file == "lesion-prune.svg" }?.plot)
        XCTAssertEqual(prune.series.first?.points.map(\.x), [4], "pruned networks at the blocks kept")
        XCTAssertNil(plots.first { $0.file == "lesion-k-blocks.svg" }, "no random lesion, no k-block plot")
    }
}
