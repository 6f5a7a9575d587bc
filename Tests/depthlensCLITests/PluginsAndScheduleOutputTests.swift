import Foundation
import XCTest

/// The whole standard output of `depthlens plugins` and `depthlens schedule`, and the
/// exact error line and exit status of the schedule errors (issue 19, point 8), run as
/// the built executable.
///
/// The expected p_l come from the formulas of docs/stochastic-depth.md, not from the
/// program: each schedule test recomputes its column with ``Formula`` (written here
/// independently of Plugins/Schedules) and checks it against the literal text, so a
/// wrong literal fails as surely as a wrong program. The checkpoint is the golden
/// `official` network: L = 6 blocks, 2 per stage in 3 stages; blocks 3 and 5 open
/// stages 2 and 3 and downsample (option A shortcuts), the others have identity
/// shortcuts.
final class PluginsAndScheduleOutputTests: XCTestCase {
    let checkpoint = "Tests/Fixtures/golden/official.ckpt.h5"

    /// p_l for l = 1...L, from docs/stochastic-depth.md.
    enum Formula {
        static let L = 6
        static let stageOf = [1, 1, 2, 2, 3, 3]
        static let downsampling: Set = [3, 5]
        /// constant: p_l = p.
        static func constant(_ p: Double) -> [Double] { Array(repeating: p, count: L) }
        /// linear (paper): p_l = 1 - (l / L)(1 - p_L).
        static func linear(_ pL: Double, blocks: Int = L) -> [Double] { (1...blocks).map { 1 - Double($0) / Double(blocks) * (1 - pL) } }
        /// linear from zero: drop_l = r (l - 1) / (L - 1).
        static func linearFromZero(_ r: Double) -> [Double] { (1...L).map { 1 - r * Double($0 - 1) / Double(L - 1) } }
        /// linear, EfficientNet: drop_l = r (l - 1) / L.
        static func linearEfficientNet(_ r: Double) -> [Double] { (1...L).map { 1 - r * Double($0 - 1) / Double(L) } }
    }

    /// The text `schedule` prints for `p` (one row per block, then the mean and standard
    /// deviation of the Poisson-binomial number of active blocks: sum p_l and
    /// sqrt(sum p_l (1 - p_l))).
    func expectedTable(_ spec: String, _ p: [Double]) -> String {
        let keys = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1"]
        var text = "Schedule    \(spec)\nCheckpoint  \(checkpoint) (6 blocks)\n\nblock  stage  key           shortcut  p_l\n"
        for l in 1...6 {
            let shortcut = Formula.downsampling.contains(l) ? "option A" : "identity"
            text += "\(l)      \(Formula.stageOf[l - 1])      \(keys[l - 1])      \(shortcut)  \(String(format: "%.6f", p[l - 1]))\n"
        }
        let mean = p.reduce(0, +), sd = p.map { $0 * (1 - $0) }.reduce(0, +).squareRoot()
        return text + "\n" + String(format: "Expected number of active blocks: %.4f of 6 (standard deviation %.4f)", mean, sd) + "\n"
    }

    func assertSchedule(_ spec: String, prints literal: String, formula p: [Double], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(literal, expectedTable(spec, p), "the literal disagrees with the formula", file: file, line: line)
        let result = try CLI.run(["schedule", spec, "--checkpoint", checkpoint])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr, "", file: file, line: line)
        XCTAssertEqual(result.stdout, literal, file: file, line: line)
    }

    // MARK: schedule

    func testScheduleLinearPrintsThePapersDecayForEveryBlock() throws {
        // p_l = 1 - (l/6)(1 - 0.5) = 1 - l/12: 11/12, 10/12, ..., 6/12.
        // Mean 4.25; variance sum p(1-p) = (11 + 20 + 27 + 32 + 35 + 36)/144 = 161/144, sd 1.0574.
        let literal = """
            Schedule    linear:pL=0.5
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  0.916667
            2      1      layer1.1      identity  0.833333
            3      2      layer2.0      option A  0.750000
            4      2      layer2.1      identity  0.666667
            5      3      layer3.0      option A  0.583333
            6      3      layer3.1      identity  0.500000

            Expected number of active blocks: 4.2500 of 6 (standard deviation 1.0574)

            """
        try assertSchedule("linear:pL=0.5", prints: literal, formula: Formula.linear(0.5))
        XCTAssertEqual((161.0 / 144).squareRoot(), 1.0574, accuracy: 5e-5)
        // pL defaults to 0.5: the same numbers under the bare name.
        XCTAssertEqual(try CLI.run(["schedule", "linear", "--checkpoint", checkpoint]).stdout,
                       literal.replacingOccurrences(of: "Schedule    linear:pL=0.5", with: "Schedule    linear"))
    }

    func testScheduleConstantGivesEveryBlockTheSameProbability() throws {
        // 6 x 0.8 = 4.8; variance 6 x 0.8 x 0.2 = 0.96, sd 0.9798.
        let literal = """
            Schedule    constant:p=0.8
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  0.800000
            2      1      layer1.1      identity  0.800000
            3      2      layer2.0      option A  0.800000
            4      2      layer2.1      identity  0.800000
            5      3      layer3.0      option A  0.800000
            6      3      layer3.1      identity  0.800000

            Expected number of active blocks: 4.8000 of 6 (standard deviation 0.9798)

            """
        try assertSchedule("constant:p=0.8", prints: literal, formula: Formula.constant(0.8))
    }

    func testScheduleCustomPrintsTheGivenListInlineOrFromAFile() throws {
        // Mean 4.5; variance 0 + .09 + .16 + .21 + .24 + .25 = 0.95, sd 0.9747.
        let values = [1, 0.9, 0.8, 0.7, 0.6, 0.5]
        let literal = """
            Schedule    custom:values=[1,0.9,0.8,0.7,0.6,0.5]
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  1.000000
            2      1      layer1.1      identity  0.900000
            3      2      layer2.0      option A  0.800000
            4      2      layer2.1      identity  0.700000
            5      3      layer3.0      option A  0.600000
            6      3      layer3.1      identity  0.500000

            Expected number of active blocks: 4.5000 of 6 (standard deviation 0.9747)

            """
        try assertSchedule("custom:values=[1,0.9,0.8,0.7,0.6,0.5]", prints: literal, formula: values)

        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("probs.csv").path, json = folder.appendingPathComponent("probs.json").path
        try "block,p\n1,1\n2,0.9\n3,0.8\n4,0.7\n5,0.6\n6,0.5\n".write(toFile: csv, atomically: true, encoding: .utf8)
        // The integer 1 and 1.0 are numbers (before, any JSON 0 or 1 was refused as "not a
        // number", being indistinguishable from false and true by `is Bool`).
        let list = folder.appendingPathComponent("list.json").path
        try "{\"survival_probabilities\": [1, 0.9, 0.8, 0.7, 0.6, 0.5]}".write(toFile: json, atomically: true, encoding: .utf8)
        try "[1.0, 0.9, 0.8, 0.7, 0.6, 0.5]".write(toFile: list, atomically: true, encoding: .utf8)
        for file in [csv, json, list] {
            let result = try CLI.run(["schedule", "custom:file=\(file)", "--checkpoint", checkpoint])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(result.stdout, literal.replacingOccurrences(of: "custom:values=[1,0.9,0.8,0.7,0.6,0.5]", with: "custom:file=\(file)"))
        }
        // A Boolean is still not a probability.
        try "[true, 0.9, 0.8, 0.7, 0.6, 0]".write(toFile: list, atomically: true, encoding: .utf8)
        let boolean = try CLI.run(["schedule", "custom:file=\(list)", "--checkpoint", checkpoint])
        XCTAssertEqual(boolean.status, 1)
        XCTAssertEqual(boolean.stderr, "Error: 'custom:file=\(list)': \(list): entry 1 is not a number\n")
    }

    func testScheduleOptionsApplyPerStageAndSpareDownsamplingBlocks() throws {
        // per_stage=true: linear within each stage of L_s = 2 blocks, 1 - (1/2)(0.5) = 0.75, then 0.5.
        try assertSchedule("linear:pL=0.5,per_stage=true", prints: """
            Schedule    linear:pL=0.5,per_stage=true
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  0.750000
            2      1      layer1.1      identity  0.500000
            3      2      layer2.0      option A  0.750000
            4      2      layer2.1      identity  0.500000
            5      3      layer3.0      option A  0.750000
            6      3      layer3.1      identity  0.500000

            Expected number of active blocks: 3.7500 of 6 (standard deviation 1.1456)

            """, formula: Formula.linear(0.5, blocks: 2) + Formula.linear(0.5, blocks: 2) + Formula.linear(0.5, blocks: 2))
        // linear from zero, r = 0.5: 1, 0.9, 0.8, 0.7, 0.6, 0.5; only=identity then keeps
        // the downsampling blocks 3 and 5 at 1.
        let fromZero = Formula.linearFromZero(0.5).enumerated().map { Formula.downsampling.contains($0.offset + 1) ? 1 : $0.element }
        try assertSchedule("linear-from-zero:r=0.5,only=identity", prints: """
            Schedule    linear-from-zero:r=0.5,only=identity
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  1.000000
            2      1      layer1.1      identity  0.900000
            3      2      layer2.0      option A  1.000000
            4      2      layer2.1      identity  0.700000
            5      3      layer3.0      option A  1.000000
            6      3      layer3.1      identity  0.500000

            Expected number of active blocks: 5.1000 of 6 (standard deviation 0.7416)

            """, formula: fromZero)
        // EfficientNet, r defaults to 0.2: drop_l = 0.2 (l-1)/6, so the last block drops 1/6, less than r.
        try assertSchedule("linear-efficientnet", prints: """
            Schedule    linear-efficientnet
            Checkpoint  Tests/Fixtures/golden/official.ckpt.h5 (6 blocks)

            block  stage  key           shortcut  p_l
            1      1      layer1.0      identity  1.000000
            2      1      layer1.1      identity  0.966667
            3      2      layer2.0      option A  0.933333
            4      2      layer2.1      identity  0.900000
            5      3      layer3.0      option A  0.866667
            6      3      layer3.1      identity  0.833333

            Expected number of active blocks: 5.5000 of 6 (standard deviation 0.6625)

            """, formula: Formula.linearEfficientNet(0.2))
    }

    func testScheduleJSONHoldsTheExactProbabilities() throws {
        let result = try CLI.run(["schedule", "linear:pL=0.5", "--checkpoint", checkpoint, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, """
            {"schedule": "linear:pL=0.5", "checkpoint": "Tests/Fixtures/golden/official.ckpt.h5", "expected_active_blocks": 4.25, "variance_active_blocks": 1.1180555555555556, "blocks": [
              {"block": 1, "stage": 1, "shortcut": "identity", "p": 0.9166666666666666},
              {"block": 2, "stage": 1, "shortcut": "identity", "p": 0.8333333333333334},
              {"block": 3, "stage": 2, "shortcut": "option A", "p": 0.75},
              {"block": 4, "stage": 2, "shortcut": "identity", "p": 0.6666666666666667},
              {"block": 5, "stage": 3, "shortcut": "option A", "p": 0.5833333333333333},
              {"block": 6, "stage": 3, "shortcut": "identity", "p": 0.5}
            ]}

            """)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let p = try XCTUnwrap(document["blocks"] as? [[String: Any]]).compactMap { $0["p"] as? Double }
        XCTAssertEqual(p.count, 6)
        for (value, expected) in zip(p, Formula.linear(0.5)) { XCTAssertEqual(value, expected, accuracy: 1e-15) }
        XCTAssertEqual(document["variance_active_blocks"] as? Double ?? 0, 161.0 / 144, accuracy: 1e-15)
    }

    /// Before, the spec and the path were pasted between quotes unescaped: a quote in
    /// either made the document invalid JSON.
    func testScheduleJSONStaysValidForQuotesAndBackslashesInTheSpecAndPath() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("my \"best\" net\\v1.h5").path
        try FileManager.default.copyItem(atPath: CLI.fixture("golden/official.ckpt.h5"), toPath: copy)
        let probabilities = folder.appendingPathComponent("p\"s.csv").path
        try "1\n1\n1\n1\n1\n0.5\n".write(toFile: probabilities, atomically: true, encoding: .utf8)
        let result = try CLI.run(["schedule", "custom:file=\(probabilities)", "--checkpoint", copy, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        XCTAssertEqual(document["schedule"] as? String, "custom:file=\(probabilities)")
        XCTAssertEqual(document["checkpoint"] as? String, copy)
        XCTAssertEqual(document["expected_active_blocks"] as? Double, 5.5)
    }

    // MARK: schedule errors

    func testScheduleErrorsPrintOneLineAndExitWithTheDocumentedStatus() throws {
        // A schedule spec is checked when the command runs (after --plugin libraries are
        // loaded, against the network's blocks): status 1, as in Tests/Fixtures/malformed/cases.tsv.
        let cases: [(spec: String, message: String)] = [
            ("lineer", "'lineer': unknown schedule (known: constant, custom, linear, linear-efficientnet, linear-from-zero)"),
            ("linear:pl=0.5", "'linear:pl=0.5': unknown parameter 'pl' (linear takes pL, only, per_stage)"),
            ("linear:pL=1.5", "'linear:pL=1.5': 'pL' must be in [0, 1], found 1.5"),
            ("constant:p=-0.1", "'constant:p=-0.1': 'p' must be in [0, 1], found -0.1"),
            ("constant:p=abc", "'constant:p=abc': 'p' must be a number, found 'abc'"),
            ("linear-from-zero:r=2", "'linear-from-zero:r=2': 'r' must be in [0, 1], found 2.0"),
            ("custom:values=[1,0.5,2,1,1,1]", "'custom': values: entry 3 is 2.0, outside [0, 1]"),
            ("custom:values=[1,0.5]", "'custom': values has 2 probabilities but there are 6 blocks"),
            ("custom", "'custom': give values=[p1,p2,...] or file=PATH"),
            ("custom:values=[1,2", "'custom:values=[1,2': '[' is never closed"),
            ("linear:only=some", "'linear:only=some': 'only' must be all or identity, found 'some'"),
            ("linear:per_stage=maybe", "'linear:per_stage=maybe': 'per_stage' must be true or false, found 'maybe'"),
            ("linear:pL", "'linear:pL': argument 'pL' is not key=value"),
            ("constant:p=0.5,p=0.6", "'constant:p=0.5,p=0.6': argument 'p' is given twice"),
        ]
        for c in cases {
            let result = try CLI.run(["schedule", c.spec, "--checkpoint", checkpoint])
            XCTAssertEqual(result.status, 1, "\(c.spec): \(result.stderr)")
            XCTAssertEqual(result.stderr, "Error: \(c.message)\n", c.spec)
            XCTAssertEqual(result.stdout, "", c.spec)
        }
    }

    func testScheduleWithoutACheckpointIsAUsageError() throws {
        let result = try CLI.run(["schedule", "linear:pL=0.5"])
        XCTAssertEqual(result.status, 64)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr, """
            Error: Missing expected argument '--checkpoint <checkpoint>'
            Help:  --checkpoint <checkpoint>  The checkpoint whose blocks the schedule is applied to.
            Usage: depthlens schedule <name-or-spec> --checkpoint <checkpoint> [--arch <library/model>] [--json] [--plugin <lib.so> ...]
              See 'depthlens schedule --help' for more information.

            """)
    }

    // MARK: plugins

    /// Every built-in schedule and metric, sorted by name, with its summary, origin,
    /// parameters and defaults (Plugins/Schedules and Plugins/Metrics), and for each
    /// metric the result columns it gives with its defaults.
    func testPluginsPrintsTheWholeCatalogue() throws {
        let result = try CLI.run(["plugins"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        let expected = try String(contentsOfFile: CLI.fixture("cli/plugins.txt"), encoding: .utf8)
        XCTAssertEqual(result.stdout, expected)
        if result.stdout != expected {
            for (got, want) in zip(result.stdout.split(separator: "\n", omittingEmptySubsequences: false),
                                   expected.split(separator: "\n", omittingEmptySubsequences: false)) where got != want {
                XCTFail("first difference:\n  got:  \(got)\n  want: \(want)")
                break
            }
        }
    }
}
