import XCTest
import DepthLens

/// A gate configuration from the command line resolves against a checkpoint.
final class GateConfigurationTests: XCTestCase {
    let checkpoint = try! Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))

    func testAllOnByDefault() throws {
        XCTAssertEqual(try GateConfiguration().resolve(for: checkpoint), [1, 1, 1, 1, 1, 1])
    }

    func testExpectationRuleUsesRecordedSurvivalProbabilities() throws {
        let gates = try GateConfiguration(rule: .expectation, drop: [2]).resolve(for: checkpoint)
        let p = checkpoint.training!.survivalProbabilities!.map { Float($0) }
        XCTAssertEqual(gates, [p[0], 0, p[2], p[3], p[4], p[5]])
        XCTAssertEqual(p.last, 0.5)
    }

    func testInvertedRuleIsIdentity() throws {
        XCTAssertEqual(try GateConfiguration(rule: .inverted, drop: [6]).resolve(for: checkpoint), [1, 1, 1, 1, 1, 0])
    }

    func testBadBlockNumbersAndLengthsAreNamed() {
        XCTAssertThrowsError(try GateConfiguration(drop: [7]).resolve(for: checkpoint)) {
            XCTAssertEqual("\($0)", "bad gates: block 7 does not exist; the network has blocks 1...6")
        }
        XCTAssertThrowsError(try GateConfiguration(drop: [0]).resolve(for: checkpoint))
        XCTAssertThrowsError(try GateConfiguration(explicit: [1, 0]).resolve(for: checkpoint)) {
            XCTAssertTrue("\($0)".contains("2 entries but the network has 6 blocks"))
        }
    }

    func testSampledGatesScaleKeptBlocksOnlyForInvertedTraining() {
        let p = [1.0, 0.5, 0.25]
        XCTAssertEqual(Gates.sampled(keep: [true, false, true], rule: .inverted, survival: p), [1, 0, 4])
        XCTAssertEqual(Gates.sampled(keep: [true, false, true], rule: .expectation, survival: p), [1, 0, 1])
    }

    func testEvaluatorRejectsImagesThatDoNotFit() throws {
        let evaluator = Evaluator(network: Network(checkpoint: checkpoint))
        let wrongChannels = ImageBatch(count: 1, channels: 3, height: 12, width: 12, pixels: .init(repeating: 0, count: 432))
        XCTAssertThrowsError(try evaluator.logits(wrongChannels)) {
            XCTAssertTrue("\($0)".contains("3 channel(s), the network takes 1"), "\($0)")
        }
        // Average-pool shortcuts need sides divisible by the stride, as avg_pool2d would give another size.
        let odd = ImageBatch(count: 1, channels: 1, height: 13, width: 13, pixels: .init(repeating: 0, count: 169))
        XCTAssertThrowsError(try evaluator.logits(odd)) {
            XCTAssertTrue("\($0)".contains("block 3"), "\($0)")
        }
        let ok = ImageBatch(count: 2, channels: 1, height: 12, width: 12, pixels: .init(repeating: 0.1, count: 288))
        XCTAssertThrowsError(try evaluator.logits(ok, gates: .perExample([[1, 1, 1, 1, 1, 1]]))) {
            XCTAssertTrue("\($0)".contains("1 per-example gate vectors for a batch of 2"), "\($0)")
        }
        XCTAssertThrowsError(try evaluator.logits(ok, gates: .shared([1, 1, 1, .nan, 1, 1]))) {
            XCTAssertTrue("\($0)".contains("block 4"), "\($0)")
        }
    }
}
