import DepthLens
import DepthLensSchedules
import Foundation
import XCTest

/// Every built-in schedule gives the survival probabilities the reference codebases
/// compute (numpy, tools/make_schedule_fixtures.py), including per-stage and
/// identity-only application, and bad specs fail before any computation.
final class BuiltinScheduleTests: XCTestCase {
    let registry: PluginRegistry = {
        let registry = PluginRegistry()
        BuiltinSchedules.register(in: registry)
        return registry
    }()

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// Stages of `blocks` widths 4, 8, 16... with stride 2 from the second stage on.
    func architecture(stages: [Int]) -> Architecture {
        Architecture(inChannels: 1, numClasses: 2, stemWidth: 4,
                     stages: stages.enumerated().map { .init(blocks: $1, width: 4 << $0, stride: $0 == 0 ? 1 : 2) })
    }

    func testMatchesNumpyForEverySpecLayoutAndOption() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("schedules/schedules.json"))
        let cases = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(cases.count, 96)
        for item in cases {
            let spec = item["spec"] as! String
            let expected = item["p"] as! [Double]
            let p = try registry.survivalProbabilities(spec, for: architecture(stages: item["stages"] as! [Int]))
            XCTAssertEqual(p.count, expected.count, spec)
            for (l, (a, b)) in zip(p, expected).enumerated() {
                XCTAssertEqual(a, b, accuracy: 1e-12, "\(spec): block \(l + 1)")
            }
        }
    }

    func testThePapersScheduleEndsAtPLAndTimmsStartsAtOne() throws {
        let arch = architecture(stages: [18, 18, 18])
        let paper = try registry.survivalProbabilities("linear:pL=0.5", for: arch)
        XCTAssertEqual(paper.first!, 1 - 0.5 / 54, accuracy: 1e-15, "the first block already drops a little")
        XCTAssertEqual(paper.last, 0.5)
        XCTAssertEqual(paper.reduce(0, +), 54 - 0.5 * 55 / 2, accuracy: 1e-9, "expected active blocks")
        let timm = try registry.survivalProbabilities("linear-from-zero:r=0.2", for: arch)
        XCTAssertEqual(timm.first, 1)
        XCTAssertEqual(timm.last!, 0.8, accuracy: 1e-15)
        let efficientnet = try registry.survivalProbabilities("linear-efficientnet:r=0.2", for: arch)
        XCTAssertGreaterThan(efficientnet.last!, 0.8, "EfficientNet's last block drops less than r")
    }

    func testCustomScheduleFromInlineValuesCSVAndJSON() throws {
        let arch = architecture(stages: [2, 1])
        XCTAssertEqual(try registry.survivalProbabilities("custom:values=[1,0.75,0.5]", for: arch), [1, 0.75, 0.5])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("schedules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("p.csv").path
        try "block,p\n1,0.9\n2,0.8\n3,0.7\n".write(toFile: csv, atomically: true, encoding: .utf8)
        XCTAssertEqual(try registry.survivalProbabilities("custom:file=\(csv)", for: arch), [0.9, 0.8, 0.7])
        let json = folder.appendingPathComponent("p.json").path
        try "{\"survival_probabilities\": [0.6, 0.5, 0.4]}".write(toFile: json, atomically: true, encoding: .utf8)
        XCTAssertEqual(try registry.survivalProbabilities("custom:file=\(json)", for: arch), [0.6, 0.5, 0.4])
        let bad = folder.appendingPathComponent("bad.csv").path
        try "0.9\nlots\n".write(toFile: bad, atomically: true, encoding: .utf8)
        assertFails("custom:file=\(bad)", arch, ["line 2", "'lots' is not a number"])
        assertFails("custom:file=\(folder.path)/none.csv", arch, ["cannot read", "no such file"])
        assertFails("custom:values=[1,0.5]", arch, ["has 2 probabilities but there are 3 blocks"])
        assertFails("custom:values=[1,0.5,1.2]", arch, ["entry 3 is 1.2, outside [0, 1]"])
        assertFails("custom", arch, ["give values=[p1,p2,...] or file=PATH"])
    }

    /// JSON numbers 0 and 1 (written `1`, `1.0` or `0`) are probabilities; `true` and
    /// `false` are not, though Foundation bridges both kinds to NSNumber.
    func testCustomJSONFileTakesZeroAndOneButRefusesBooleans() throws {
        let arch = architecture(stages: [2, 1])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("schedules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let json = folder.appendingPathComponent("p.json").path
        for (text, expected) in [("[1, 0.5, 0]", [1.0, 0.5, 0]), ("[1.0, 0.0, 1]", [1, 0, 1]),
                                 ("{\"survival_probabilities\": [0, 1, 0.25]}", [0, 1, 0.25])] {
            try text.write(toFile: json, atomically: true, encoding: .utf8)
            XCTAssertEqual(try registry.survivalProbabilities("custom:file=\(json)", for: arch), expected, text)
        }
        try "[1, true, 0.5]".write(toFile: json, atomically: true, encoding: .utf8)
        assertFails("custom:file=\(json)", arch, ["entry 2 is not a number"])
        try "[false, 1, 0.5]".write(toFile: json, atomically: true, encoding: .utf8)
        assertFails("custom:file=\(json)", arch, ["entry 1 is not a number"])
    }

    func testBadSpecsAreNamedBeforeAnyComputation() {
        let arch = architecture(stages: [3])
        assertFails("linear:pL=1.5", arch, ["'pL' must be in [0, 1], found 1.5"])
        assertFails("linear:pl=0.5", arch, ["unknown parameter 'pl'", "pL"])
        assertFails("linear:pL=", arch, ["argument 'pL' has no value"])
        assertFails("linear:pL", arch, ["argument 'pL' is not key=value"])
        assertFails("linear:pL=abc", arch, ["'pL' must be a number, found 'abc'"])
        assertFails("lineer", arch, ["unknown schedule", "linear-from-zero"])
        assertFails("constant:p=0.5,only=downsampling", arch, ["'only' must be all or identity"])
        assertFails("constant:p=0.5,per_stage=maybe", arch, ["'per_stage' must be true or false"])
        assertFails("custom:values=[1,0.5", arch, ["'[' is never closed"])
    }

    func assertFails(_ spec: String, _ arch: Architecture, _ words: [String], line: UInt = #line) {
        XCTAssertThrowsError(try registry.survivalProbabilities(spec, for: arch), spec, line: line) { error in
            XCTAssertTrue(error is PluginError, "\(type(of: error))", line: line)
            for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
        }
    }
}
