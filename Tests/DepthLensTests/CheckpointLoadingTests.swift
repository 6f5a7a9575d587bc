import XCTest
import DepthLens

/// Loading verifies every tensor and every metadata field, and a bad file gets a message
/// that names the key or attribute and, for shapes, both shapes.
final class CheckpointLoadingTests: XCTestCase {
    func testValidCheckpointLoadsWithItsMetadata() throws {
        let ckpt = try Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))
        XCTAssertEqual(ckpt.architecture.blockCount, 6)
        XCTAssertEqual(ckpt.architecture.shortcut, .averagePoolThenPad)
        XCTAssertEqual(ckpt.tensors.count, ckpt.architecture.expectedTensors.count)
        XCTAssertEqual(ckpt.training?.testTimeRule, .expectation)
        XCTAssertEqual(ckpt.training?.gateGranularity, .batch)
        XCTAssertEqual(ckpt.training?.schedule?.params["pL"], 0.5)
        XCTAssertEqual(ckpt.training?.survivalProbabilities?.count, 6)
        XCTAssertEqual(ckpt.provenance["tool"], "tools/make_golden.py")
    }

    /// Each malformed fixture (tools/make_malformed.py) and the words its message must contain.
    static let expectations: [(file: String, message: [String])] = [
        ("tensor-int.h5", ["fc.weight", "int32 elements", "float32"]),
        ("tensor-float16.h5", ["fc.bias", "float16"]),
        ("tensor-wrong-shape.h5", ["layer2.0.conv1.weight", "[4, 2, 2, 3]", "[4, 2, 3, 3]"]),
        ("tensor-wrong-rank.h5", ["fc.bias", "[1, 3]", "[3]"]),
        ("tensor-nan.h5", ["layer2.0.conv1.weight", "nan", "finite"]),
        ("tensor-inf.h5", ["fc.weight", "inf"]),
        ("tensor-missing.h5", ["layer1.0.bn2.running_var", "missing tensor"]),
        ("tensor-unused.h5", ["layer3.0.conv1.weight", "unused tensor"]),
        ("tensor-negative-variance.h5", ["bn1.running_var", "negative"]),
        ("tensor-huge-declared.h5", ["fc.weight", "[3, 1099511627776]", "[3, 4]"]),
        ("arch-malformed-json.h5", ["@architecture", "not a JSON object"]),
        ("arch-missing-field.h5", ["@architecture", "'stages'", "missing field"]),
        ("arch-negative-blocks.h5", ["@architecture", "stages[1].blocks", "-2"]),
        ("arch-zero-width.h5", ["@architecture", "stem_width", "found 0"]),
        ("arch-unknown-field.h5", ["@architecture", "'shortcuts'", "unknown field"]),
        ("arch-unknown-shortcut.h5", ["@architecture", "shortcut", "unknown value"]),
        ("arch-missing.h5", ["@architecture", "missing attribute"]),
        ("format-version-2.h5", ["@format_version", "is 2", "reads version 1"]),
        ("training-bad-probability.h5", ["@training", "survival_probabilities[1]", "1.5", "[0, 1]"]),
        ("training-wrong-length.h5", ["@training", "3 entries", "2 blocks"]),
        ("tensors-group-missing.h5", ["/tensors", "missing group"]),
        ("not-hdf5.h5", ["not an HDF5 file"]),
        ("empty.h5", ["empty"]),
    ]

    func testEveryMalformedCheckpointGetsAMessageNamingTheProblemAndPlace() {
        for (name, words) in Self.expectations {
            let path = Fixtures.path("malformed/\(name)")
            XCTAssertThrowsError(try Checkpoint.load(from: path), name) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(path), "\(name): message does not start with the path: \(message)")
                for word in words {
                    XCTAssertTrue(message.contains(word), "\(name): '\(message)' lacks '\(word)'")
                }
            }
        }
    }

    func testTinyValidFixtureLoads() throws {
        XCTAssertNoThrow(try Checkpoint.load(from: Fixtures.path("malformed/valid-tiny.h5")))
        // Version-2 object headers and a version-3 superblock pass the pre-checks too.
        let latest = try Checkpoint.load(from: Fixtures.path("malformed/valid-tiny-latest-format.h5"))
        XCTAssertEqual(latest.tensors.count, try Checkpoint.load(from: Fixtures.path("malformed/valid-tiny.h5")).tensors.count)
    }

    func testTensorTableFollowsPyTorchNamesAndShapes() {
        let arch = Architecture(block: .preact, inChannels: 3, numClasses: 5, stemWidth: 4,
                                stages: [.init(blocks: 1, width: 4, stride: 1), .init(blocks: 2, width: 8, stride: 2)],
                                shortcut: .projection, convBias: false)
        let table = Dictionary(uniqueKeysWithValues: arch.expectedTensors.map { ($0.key, $0.shape) })
        XCTAssertEqual(table["conv1.weight"], [4, 3, 3, 3])
        XCTAssertNil(table["conv1.bias"])
        XCTAssertNil(table["bn1.weight"], "pre-activation stems have no batch norm")
        XCTAssertEqual(table["layer2.0.bn1.weight"], [4], "pre-activation bn1 normalises the block input")
        XCTAssertEqual(table["layer2.0.shortcut.0.weight"], [8, 4, 1, 1])
        XCTAssertEqual(table["layer2.0.shortcut.1.running_var"], [8])
        XCTAssertNil(table["layer2.1.shortcut.0.weight"], "identity blocks have no projection")
        XCTAssertEqual(table["bn_final.weight"], [8])
        XCTAssertEqual(table["fc.weight"], [5, 8])
        XCTAssertEqual(arch.blocks.map(\.shortcut), [.identity, .projection, .identity])
        XCTAssertEqual(arch.blocks.map(\.index), [1, 2, 3])
    }

    func testOptionAArchitecturesCannotNarrow() {
        let arch = Architecture(inChannels: 1, numClasses: 2, stemWidth: 8,
                                stages: [.init(blocks: 1, width: 4, stride: 1)], shortcut: .subsampleThenPad)
        XCTAssertThrowsError(try arch.validate()) { error in
            XCTAssertTrue("\(error)".contains("stages[0].width"), "\(error)")
        }
    }
}
