import DepthLens
import DepthLensMetrics
import Foundation
import XCTest

/// Intervals and tests agree with scipy and numpy on the same inputs
/// (tools/make_statistics_fixtures.py; the bootstrap with the same seeded resamples), and
/// the lesion and depth analyses report them as docs/results-csv.md says.
final class StatisticsTests: XCTestCase {
    struct Fixture: Decodable {
        struct Wilson: Decodable { var successes: Double; var n: Int; var low: Double; var high: Double }
        struct McNemar: Decodable { var lost: Int; var gained: Int; var p: Double; var method: String }
        struct Bootstrap: Decodable { var values: [Double]; var seed: UInt64; var stream: Int; var mean: [Double]; var median: [Double] }
        var resamples: Int
        var wilson: [Wilson]
        var mcnemar: [McNemar]
        var bootstrap: [Bootstrap]
    }

    static let fixture: Fixture = {
        let data = try! Data(contentsOf: AnalysisTests.fixtures.appendingPathComponent("statistics/statistics.json"))
        return try! JSONDecoder().decode(Fixture.self, from: data)
    }()

    func testWilsonIntervalsAreScipys() throws {
        for c in Self.fixture.wilson {
            let interval = try XCTUnwrap(Statistics.wilson(successes: c.successes, n: c.n))
            XCTAssertEqual(interval.low, c.low, accuracy: 1e-12, "\(c.successes)/\(c.n)")
            XCTAssertEqual(interval.high, c.high, accuracy: 1e-12, "\(c.successes)/\(c.n)")
        }
        XCTAssertNil(Statistics.wilson(successes: 0, n: 0), "no images, no interval")
    }

    func testMcNemarIsExactBelow25DiscordantExamplesAndCorrectedChiSquareAbove() {
        for c in Self.fixture.mcnemar {
            let test = Statistics.mcNemar(lost: c.lost, gained: c.gained)
            XCTAssertEqual(test.method, c.method, "\(c.lost) vs \(c.gained)")
            XCTAssertEqual(test.p, c.p, accuracy: 1e-12 * max(1, c.p), "\(c.lost) vs \(c.gained)")
        }
        XCTAssertEqual(Set(Self.fixture.mcnemar.map(\.method)), ["mcnemar-exact", "mcnemar-chi2-corrected"], "the fixture covers both methods")
    }

    func testBootstrapIntervalsAreNumpysPercentilesOfTheSameResamples() {
        XCTAssertEqual(Statistics.bootstrapResamples, Self.fixture.resamples)
        for c in Self.fixture.bootstrap {
            let (mean, median) = Statistics.bootstrap(c.values, seed: c.seed, stream: c.stream)
            for (got, want, what) in [(mean, c.mean, "mean"), (median, c.median, "median")] {
                XCTAssertEqual(got.value, want[0], accuracy: 1e-12, "\(what) of \(c.values)")
                XCTAssertEqual(got.low, want[1], accuracy: 1e-12, "\(what) low of \(c.values)")
                XCTAssertEqual(got.high, want[2], accuracy: 1e-12, "\(what) high of \(c.values)")
            }
        }
    }

    func testBootstrapIsDeterministicGivenTheSeedAndDiffersAcrossStreams() {
        let values = Self.fixture.bootstrap[0].values
        XCTAssertEqual(Statistics.bootstrap(values, seed: 3, stream: 1).mean, Statistics.bootstrap(values, seed: 3, stream: 1).mean)
        XCTAssertNotEqual(Statistics.bootstrap(values, seed: 3, stream: 1).mean, Statistics.bootstrap(values, seed: 3, stream: 2).mean)
    }

    /// Rows as an analysis would write them: k = 3 with the fixture's bimodal trials
    /// (stream 5,000,000 + k of seed 0), the full network and one single lesion.
    func testTrialStatisticsRowsCarryTheIntervalsAndTheTest() throws {
        let trials = Self.fixture.bootstrap[0]
        XCTAssertEqual(trials.stream, 5_000_003)
        var table = ResultTable(checkpoint: "c", schedule: "s", seed: trials.seed)
        for (t, error) in trials.values.enumerated() {
            table.append(ResultRow(analysis: "lesion", experiment: .randomLesion(k: 3, trial: t), member: .deterministic, k: 3,
                                   metric: "accuracy", value: 1 - error))
        }
        table.append(ResultRow(analysis: "lesion", experiment: .fullNetwork, member: .deterministic, k: 0, metric: "accuracy", value: 1 - 14.0 / 48))
        table.append(ResultRow(analysis: "lesion", experiment: .singleLesion(block: 2), member: .deterministic, k: 1, metric: "accuracy", value: 1 - 3.0 / 48))
        table.append(ResultRow(analysis: "lesion", experiment: .singleLesion(block: 2), member: .deterministic, k: 1, metric: "discordant_lost", value: 3))
        table.append(ResultRow(analysis: "lesion", experiment: .singleLesion(block: 2), member: .deterministic, k: 1, metric: "discordant_gained", value: 14))
        let rows = TrialStatistics.rows(for: table, images: 48)
        func row(_ experiment: Experiment, _ metric: String) throws -> ResultRow {
            try XCTUnwrap(rows.first { $0.experiment == experiment && $0.metric == metric }, "\(experiment) \(metric)")
        }
        let mean = try row(.randomLesionSummary(k: 3), "mean_error"), median = try row(.randomLesionSummary(k: 3), "median_error")
        XCTAssertEqual(mean.member, .overTrials)
        XCTAssertEqual(mean.configuration, "k-3")
        XCTAssertEqual(mean.interval?.method, "bootstrap-percentile")
        XCTAssertEqual(mean.interval?.n, 10)
        XCTAssertEqual(mean.value, trials.mean[0], accuracy: 1e-12)
        XCTAssertEqual(mean.interval!.low!, trials.mean[1], accuracy: 1e-12)
        XCTAssertEqual(mean.interval!.high!, trials.mean[2], accuracy: 1e-12)
        XCTAssertEqual(median.interval!.low!, trials.median[1], accuracy: 1e-12)
        XCTAssertEqual(median.interval!.high!, trials.median[2], accuracy: 1e-12)
        // k = 0 is the full network, evaluated once: a Wilson interval over the images.
        let zero = try row(.randomLesionSummary(k: 0), "mean_error")
        let wilson = Self.fixture.wilson.first { $0.successes == 14 && $0.n == 48 }!
        XCTAssertEqual(zero.interval?.method, "wilson")
        XCTAssertEqual(zero.interval!.low!, wilson.low, accuracy: 1e-12)
        XCTAssertEqual(zero.interval!.high!, wilson.high, accuracy: 1e-12)
        let full = try row(.fullNetwork, "error")
        XCTAssertEqual(full.value, 14.0 / 48, accuracy: 1e-15)
        XCTAssertEqual(full.interval, zero.interval)
        let test = try row(.singleLesion(block: 2), "mcnemar_p")
        let expected = Self.fixture.mcnemar.first { $0.lost == 3 && $0.gained == 14 }
        XCTAssertEqual(test.interval?.method, "mcnemar-exact")
        XCTAssertEqual(test.interval?.n, 17)
        if let expected { XCTAssertEqual(test.value, expected.p, accuracy: 1e-12) }
        else { XCTAssertEqual(test.value, Statistics.mcNemar(lost: 3, gained: 14).p) }
        XCTAssertNil(rows.first { $0.experiment == .fullNetwork && $0.metric == "mcnemar_p" }, "the full network is not tested against itself")
    }

    func testDiscordantCountsOfALesionAreTheChangeInCorrectExamples() throws {
        let context = try AnalysisTests.context("official")
        let table = try LesionAnalysis.run(context, lesions: LesionAnalysis.singleBlocks(count: 6))
        let n = Double(context.source.count)
        let full = try XCTUnwrap(table.value("accuracy", of: .fullNetwork))
        XCTAssertEqual(table.value("discordant_lost", of: .fullNetwork), 0)
        XCTAssertEqual(table.value("discordant_gained", of: .fullNetwork), 0)
        for block in 1...6 {
            let lesion = Experiment.singleLesion(block: block)
            let lost = try XCTUnwrap(table.value("discordant_lost", of: lesion)), gained = try XCTUnwrap(table.value("discordant_gained", of: lesion))
            XCTAssertEqual(gained - lost, ((try XCTUnwrap(table.value("accuracy", of: lesion)) - full) * n).rounded(), "block \(block)")
        }
    }

    func testRandomDeletionEvaluatesKZeroAndEveryCandidateOnceAndDrawsOnlyCandidates() throws {
        let lesions = LesionAnalysis.randomBlocks(count: 6, maxK: 6, trials: 4, seed: 1)
        XCTAssertEqual(lesions.filter { $0.experiment.kind == "random-lesion" && $0.dropped.count == 0 }.count, 1)
        XCTAssertEqual(lesions.filter { $0.dropped.count == 6 }.count, 1, "k = L has one configuration")
        XCTAssertEqual(lesions.filter { $0.dropped.count == 3 }.count, 4)
        let candidates = LesionAnalysis.candidates(blockCount: 6, survival: [1, 1, 0.9, 0.8, 0.7, 0.6], excluded: [5], droppableOnly: true)
        XCTAssertEqual(candidates, [3, 4, 6])
        for k in 0...3 {
            for lesion in LesionAnalysis.randomBlocks(k: k, among: candidates, trials: 0..<5, seed: 9) {
                XCTAssertEqual(lesion.dropped.count, k)
                XCTAssertTrue(Set(lesion.dropped).isSubset(of: candidates), "\(lesion.dropped)")
            }
        }
        // Every block a candidate: the draws of the plain random deletion.
        XCTAssertEqual(LesionAnalysis.randomBlocks(k: 2, among: Array(1...6), trials: 0..<4, seed: 1),
                       lesions.filter { $0.dropped.count == 2 })
    }

    func testAdaptiveTrialsStopWhenTheIntervalIsNarrowAndAreReproducible() throws {
        let context = try AnalysisTests.context("official")
        let plan = TrialPlan(ciWidth: 0.1, step: 4, maximum: 12)
        let table = try DepthAnalysis.run(context, depths: [0, 3, 6], plan: plan)
        func trials(_ d: Int) -> Int {
            Set(table.rows.compactMap { row -> Int? in
                if case .fixedDepth(d, let t) = row.experiment { t } else { nil }
            }).count
        }
        XCTAssertEqual(trials(0), 1, "depth 0 has one configuration")
        XCTAssertEqual(trials(6), 1, "depth L has one configuration")
        let middle = trials(3)
        XCTAssertTrue([4, 8, 12].contains(middle), "rounds of 4 up to 12, found \(middle)")
        let stats = TrialStatistics.rows(for: table, images: context.source.count)
        let mean = try XCTUnwrap(stats.first { $0.experiment == .fixedDepthSummary(active: 3) && $0.metric == "mean_error" })
        XCTAssertEqual(mean.interval?.n, middle)
        if middle < 12 { XCTAssertLessThanOrEqual(mean.interval!.high! - mean.interval!.low!, 0.1, "stopped early only when narrow enough") }
        else { XCTAssertGreaterThan(try XCTUnwrap(TrialStatistics.rows(for: try DepthAnalysis.run(context, depths: [3], plan: TrialPlan(fixed: 8)), images: 48)
            .first { $0.metric == "mean_error" }).interval.map { $0.high! - $0.low! } ?? 0, 0.1, "went on only while too wide") }
        let again = try DepthAnalysis.run(context, depths: [0, 3, 6], plan: plan)
        XCTAssertEqual(again.rows, table.rows, "the same seed gives the same trials")
        let fixed = try DepthAnalysis.run(context, depths: [0, 3, 6], trials: 2)
        XCTAssertEqual(Set(fixed.rows.compactMap { $0.experiment.trial }), [0, 1])
    }
}
