import DepthLens
import Foundation
import XCTest

/// Several checkpoints analysed together (a comparison) are paired: trial t of a depth or
/// of k deleted blocks is the same sub-network on each, in every adaptive round, and each
/// checkpoint's numbers are those its own analysis gives for those trials.
final class PairedAnalysesTests: XCTestCase {
    /// Trials of depth `d` in `table`, and their accuracy rows by trial.
    func trials(_ table: ResultTable, depth d: Int) -> [Int: Double] {
        var out: [Int: Double] = [:]
        for row in table.rows where row.metric == "accuracy" {
            if case .fixedDepth(d, let t) = row.experiment { out[t] = row.value }
        }
        return out
    }

    func testAdaptiveRoundsGoOnForEveryCheckpointWhileAnyIntervalIsTooWide() throws {
        let a = try AnalysisTests.context("official")
        // Another network with as many blocks, on the same images.
        let other = try Checkpoint.load(from: AnalysisTests.fixtures.appendingPathComponent("golden/preact-avgpool.ckpt.h5").path)
        var b = a
        b.checkpoint = other
        b.evaluator = Evaluator(network: Network(checkpoint: other), threads: 2)
        b.survival = other.training!.survivalProbabilities!
        // At this width the first network needs more trials at depth 1, the second at depth 3.
        let plan = TrialPlan(ciWidth: 0.02, step: 4, maximum: 24)
        let paired = try DepthAnalysis.run([a, b], depths: [0, 1, 2, 3, 4, 5, 6], plan: plan)
        let alone = [try DepthAnalysis.run(a, depths: [0, 1, 2, 3, 4, 5, 6], plan: plan), try DepthAnalysis.run(b, depths: [0, 1, 2, 3, 4, 5, 6], plan: plan)]
        var differing = Set<Bool>()  // whether the first network needed more trials alone
        for d in [0, 1, 2, 3, 4, 5, 6] {
            let (ta, tb) = (trials(paired[0], depth: d), trials(paired[1], depth: d))
            XCTAssertEqual(Set(ta.keys), Set(tb.keys), "depth \(d): the same trials on both")
            let n = ta.count
            XCTAssertGreaterThanOrEqual(n, trials(alone[0], depth: d).count)
            XCTAssertGreaterThanOrEqual(n, trials(alone[1], depth: d).count)
            if trials(alone[0], depth: d).count != trials(alone[1], depth: d).count { differing.insert(trials(alone[0], depth: d).count > trials(alone[1], depth: d).count) }
            if n < plan.maximum, ![0, 6].contains(d) {
                for table in paired {
                    let mean = try XCTUnwrap(TrialStatistics.rows(for: table, images: 48).first { $0.experiment == .fixedDepthSummary(active: d) && $0.metric == "mean_error" })
                    XCTAssertLessThanOrEqual(mean.interval!.high! - mean.interval!.low!, plan.ciWidth, "depth \(d) stopped with an interval too wide")
                }
            }
            // Each checkpoint's trial t is what its own analysis computes for trial t.
            for (table, single) in zip(paired, alone) {
                for (t, value) in trials(single, depth: d) where t < n { XCTAssertEqual(trials(table, depth: d)[t], value, "depth \(d) trial \(t)") }
            }
        }
        XCTAssertEqual(differing, [true, false], "alone, each network would have stopped first at some depth")
        // The sub-networks are the same blocks on both: the masks differ only in the kept blocks' scale.
        for mask in paired[0].masks where mask.key.hasPrefix("depth-") {
            let other = try XCTUnwrap(paired[1].masks.first { $0.key == mask.key })
            XCTAssertEqual(mask.gates.map { $0 == 0 }, other.gates.map { $0 == 0 }, mask.key)
        }
    }

    func testThePairedDifferenceIsTheMeanDifferenceOverTrialsWithABootstrapOverThePairs() throws {
        let a = try AnalysisTests.context("official")
        var b = a
        b.rule = .inverted
        let tables = try LesionAnalysis.runRandom([a, b], candidates: Array(1...6), ks: 0...3, plan: TrialPlan(fixed: 7))
        let rows = PairedDifferences.rows(for: tables[1], versus: tables[0])
        XCTAssertEqual(rows.map(\.k), [0, 1, 2, 3], "k = 0 too (evaluated once)")
        for row in rows {
            XCTAssertEqual(row.metric, "mean_error_difference")
            XCTAssertEqual(row.versus, tables[0].checkpoint)
            guard case .randomLesionSummary(let k) = row.experiment else { return XCTFail("\(row.experiment)") }
            func errors(_ table: ResultTable) -> [Double] {
                (0..<(k == 0 ? 1 : 7)).map { t in 1 - table.value("accuracy", of: .randomLesion(k: k, trial: t))! }
            }
            let differences = zip(errors(tables[1]), errors(tables[0])).map { $0 - $1 }
            if k == 0 {
                XCTAssertEqual(row.interval, ResultRow.Interval(low: nil, high: nil, method: "evaluated-once", n: 1))
                XCTAssertEqual(row.value, differences[0])
                continue
            }
            let bootstrap = Statistics.bootstrap(differences, seed: a.seed, stream: 7_000_000 + k).mean
            XCTAssertEqual(row.value, differences.reduce(0, +) / 7, accuracy: 1e-15)
            XCTAssertEqual(row.interval, ResultRow.Interval(low: bootstrap.low, high: bootstrap.high, method: "bootstrap-percentile-paired", n: 7))
        }
        XCTAssertTrue(PairedDifferences.rows(for: tables[0], versus: tables[0]).allSatisfy { $0.value == 0 }, "a checkpoint against itself: no difference")
    }
}
