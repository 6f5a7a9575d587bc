import XCTest
import DepthLens

/// The evaluator's logits equal PyTorch's (tools/make_golden.py) on the same weights, for
/// every architecture variant and every gate pattern: max |difference| <= 1e-4 and the
/// same argmax.
final class GoldenLogitsTests: XCTestCase {
    static let variants = ["official", "port-subsample", "projection", "preact-projection", "preact-avgpool"]

    func testEveryVariantAndGatePatternMatchesPyTorch() throws {
        var checked = 0
        for variant in Self.variants {
            let checkpoint = try Checkpoint.load(from: Fixtures.path("golden/\(variant).ckpt.h5"))
            let network = Network(checkpoint: checkpoint)
            var evaluator = Evaluator(network: network, threads: 2)
            let cases = try HDF5File.open(Fixtures.path("golden/\(variant).cases.h5")).root
            let batch = try goldenImages(cases)
            let group = try cases.group("cases")
            let names = try group.memberNames()
            XCTAssertGreaterThanOrEqual(names.count, 10, variant)
            for name in names {
                let golden = try group.group(name)
                let expected = try golden.dataset("logits").readFloats()
                let gates = try goldenGates(golden)
                if golden.contains("order") {
                    let order = try golden.dataset("order").readIntegers().map { Int($0) }
                    evaluator = Evaluator(network: try network.reordered(order), threads: 2)
                } else {
                    evaluator = Evaluator(network: network, threads: 2)
                }
                let logits = try evaluator.logits(batch, gates: gates)
                assertLogits(logits, match: expected, classes: checkpoint.architecture.numClasses,
                             "\(variant)/\(name)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 55)
    }

    /// The optional architecture fields (docs/checkpoint-format.md): a projection shortcut
    /// without bias beside biased convolutions, and a pre-activation projection reading the
    /// block input x (fb.resnet.torch); both engines against PyTorch on every gate pattern.
    func testOptionalArchitectureFieldsMatchPyTorchOnBothEngines() throws {
        let noBias = try Checkpoint.load(from: Fixtures.path("golden/projection-nobias.ckpt.h5"))
        XCTAssertEqual(noBias.architecture.projectionBias, false)
        XCTAssertTrue(noBias.architecture.convBias)
        let input = try Checkpoint.load(from: Fixtures.path("golden/preact-input-shortcut.ckpt.h5"))
        XCTAssertEqual(input.architecture.preactShortcutInput, .input)
        let projections = input.architecture.modelDescription.units.filter { !$0.shortcut.isEmpty }
        XCTAssertFalse(projections.isEmpty)
        XCTAssertTrue(projections.allSatisfy { $0.shortcutInput == .unitInput })
        var checked = 0
        for (variant, checkpoint) in [("projection-nobias", noBias), ("preact-input-shortcut", input)] {
            XCTAssertEqual(try Architecture.parse(json: checkpoint.architecture.json()), checkpoint.architecture, variant)
            let network = Network(checkpoint: checkpoint)
            let cases = try HDF5File.open(Fixtures.path("golden/\(variant).cases.h5")).root
            let batch = try goldenImages(cases)
            let group = try cases.group("cases")
            for name in try group.memberNames() {
                let golden = try group.group(name)
                let expected = try golden.dataset("logits").readFloats()
                let gates = try goldenGates(golden)
                var evaluated = network
                if golden.contains("order") {
                    evaluated = try network.reordered(try golden.dataset("order").readIntegers().map { Int($0) })
                }
                for backend in [Evaluator.Backend.reference, .fast] {
                    let logits = try Evaluator(network: evaluated, threads: 2, backend: backend).logits(batch, gates: gates)
                    assertLogits(logits, match: expected, classes: checkpoint.architecture.numClasses, "\(variant)/\(name)/\(backend)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 40)
    }

    func testOptionalArchitectureFieldsAreRefusedWhereTheyMeanNothing() throws {
        let base = #"{"family": "cifar_resnet", "block": "basic", "in_channels": 1, "num_classes": 3, "stem_width": 4, "stages": [{"blocks": 1, "width": 4, "stride": 1}]"#
        XCTAssertThrowsError(try Architecture.parse(json: base + #", "shortcut": "A_avgpool", "projection_bias": false}"#)) {
            XCTAssertEqual(($0 as? ArchitectureError)?.field, "projection_bias")
        }
        XCTAssertThrowsError(try Architecture.parse(json: base + #", "shortcut": "B", "preact_shortcut_input": "input"}"#)) {
            XCTAssertEqual(($0 as? ArchitectureError)?.field, "preact_shortcut_input")
        }
        XCTAssertThrowsError(try Architecture.parse(json: base + #", "shortcut": "B", "preact_shortcut_input": "x"}"#))
        let plain = try Architecture.parse(json: base + #", "shortcut": "B"}"#)
        XCTAssertNil(plain.projectionBias)
        XCTAssertFalse(plain.json().contains("projection_bias"), "absent optional fields stay absent")
    }

    func testReorderingRejectsBlocksThatChangeShapeOrStage() throws {
        let network = Network(checkpoint: try Checkpoint.load(from: Fixtures.path("golden/port-subsample.ckpt.h5")))
        XCTAssertEqual(network.swappableGroups, [[1, 2, 3], [5], [7]])
        XCTAssertThrowsError(try network.reordered([1, 2, 4, 3, 5, 6, 7])) {
            XCTAssertEqual($0 as? BlockOrderError, .cannotMove(block: 4, position: 3))
            XCTAssertTrue("\($0)".contains("block 4 cannot run in position 3"), "\($0)")
        }
        XCTAssertThrowsError(try network.reordered([1, 2, 3])) {
            XCTAssertEqual($0 as? BlockOrderError, .notAPermutation(blockCount: 7))
        }
    }

    func testOneThreadAndManyThreadsGiveIdenticalLogits() throws {
        let checkpoint = try Checkpoint.load(from: Fixtures.path("golden/projection.ckpt.h5"))
        let network = Network(checkpoint: checkpoint)
        let images = try HDF5File.open(Fixtures.path("golden/projection.cases.h5")).root.dataset("images")
        let batch = ImageBatch(count: images.shape[0], channels: images.shape[1], height: images.shape[2],
                               width: images.shape[3], pixels: try images.readFloats())
        let one = try Evaluator(network: network, threads: 1).logits(batch)
        let four = try Evaluator(network: network, threads: 4).logits(batch)
        XCTAssertEqual(one, four)
    }
}

func assertLogits(_ logits: Tensor, match expected: [Float], classes: Int, _ label: String,
                  tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(logits.scalars.count, expected.count, label, file: file, line: line)
    guard logits.scalars.count == expected.count else { return }
    let worst = zip(logits.scalars, expected).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, "\(label): max |logit difference| \(worst)", file: file, line: line)
    for n in 0..<(expected.count / classes) {
        let row = n * classes..<(n + 1) * classes
        let mine = row.max { logits.scalars[$0] < logits.scalars[$1] }
        let theirs = row.max { expected[$0] < expected[$1] }
        XCTAssertEqual(mine, theirs, "\(label): argmax of example \(n)", file: file, line: line)
    }
}
