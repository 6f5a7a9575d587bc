import DepthLens
import DepthLensMetrics
import XCTest

/// Every built-in metric given logits that are not finite (issue 23): none traps, a NaN
/// prediction never counts as correct, and sizes a user sets are bounded by the machine.
final class NonFiniteInputTests: XCTestCase {
    /// Rows 0 and 2 are NaN (their label would win every comparison with NaN), row 1 is a
    /// finite hit, row 3 a finite miss.
    private let nanBatch = PredictionBatch(classes: 3, labels: [0, 1, 2, 0],
                                           memberLogits: [[.nan, 0, 0, 0, 5, 0, .nan, .nan, .nan, 0, 4, 1]])

    func testNaNLogitsCountAsWrongAndTrapNothing() throws {
        let accuracy = try evaluate("accuracy", classes: 3, batches: [nanBatch])
        XCTAssertEqual(accuracy, [MetricResult("accuracy", 0.25)])
        let top2 = try evaluate("accuracy:k=2", classes: 3, batches: [nanBatch])
        XCTAssertEqual(top2.first?.value, 0.25, "a NaN label probability is never among the top k")
        for spec in ["calibration", "calibration:bins=5,binning=mass", "aurc"] {
            for result in try evaluate(spec, classes: 3, batches: [nanBatch]) {
                XCTAssertTrue((0...1).contains(result.value), "\(spec): \(result.name) = \(result.value)")
            }
        }
    }

    /// Infinite logits (and the NaN probabilities they can give) through every built-in
    /// metric, one example at a time and all at once: no trap, one result per name.
    func testInfiniteLogitsThroughEveryMetric() throws {
        let logits: [Float] = [.infinity, 0, 0, -.infinity, 1, 0, .infinity, .infinity, -.infinity, .nan, 0, 1]
        let labels = [0, 1, 2, 2]
        let members = [logits, logits.map { -$0 }]
        let all = PredictionBatch(classes: 3, labels: labels, memberLogits: members, referenceLogits: logits)
        let singles = (0..<4).map { i in
            PredictionBatch(classes: 3, labels: [labels[i]], memberLogits: members.map { Array($0[(3 * i)..<(3 * i + 3)]) },
                            referenceLogits: Array(logits[(3 * i)..<(3 * i + 3)]))
        }
        let specs = BuiltinMetricsTests.specsByTest.values.joined()
        for spec in specs {
            let once = try evaluate(spec, classes: 3, batches: [all])
            let streamed = try evaluate(spec, classes: 3, batches: singles)
            XCTAssertEqual(once.map(\.name), streamed.map(\.name), spec)
            XCTAssertFalse(once.isEmpty, spec)
        }
    }

    /// `calibration:bins=` is bounded by this machine's memory, and the message says what
    /// was asked and what fits.
    func testCalibrationBinsBoundedByMemory() {
        XCTAssertThrowsError(try evaluate("calibration:bins=1000000000", classes: 3, batches: [nanBatch])) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'bins' is 1000000000, which needs 24.0 GB per sub-network; at most "), message)
            XCTAssertTrue(message.contains("bins fit (1/256 of this machine's "), message)
        }
        XCTAssertNoThrow(try evaluate("calibration:bins=100000", classes: 3, batches: [nanBatch]))
    }
}
