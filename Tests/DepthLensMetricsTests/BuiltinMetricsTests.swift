import DepthLens
import DepthLensMetrics
import XCTest

/// Every built-in metric against tools/make_metric_fixtures.py (numpy/scipy), streamed in
/// one batch, in uneven batches and one example at a time.
final class BuiltinMetricsTests: XCTestCase {
    /// The specs each test checks; together they must be every spec in the fixtures.
    static let specsByTest: [String: [String]] = [
        "accuracy": ["accuracy", "accuracy:k=3"],
        "likelihood": ["nll", "gibbs_nll"],
        "brier": ["brier", "member_brier"],
        "calibration": ["calibration", "calibration:bins=4,binning=width", "calibration:bins=5,binning=width", "calibration:bins=15,binning=width",
                        "calibration:bins=5,binning=mass", "calibration:bins=15,binning=mass"],
        "uncertainty": ["entropy", "uncertainty"],
        "diversity": ["diversity"],
        "agreement": ["agreement"],
        "reference_kl": ["reference_kl"],
        "discordance": ["discordance"],
        "aurc": ["aurc"],
    ]

    private func check(_ test: String) throws {
        let compared = try checkAgainstNumpy(Self.specsByTest[test]!)
        XCTAssertGreaterThan(compared, 0)
        print("\(test): \(compared) values match numpy; largest |difference| so far \(largestDifference)")
    }

    func testAccuracy() throws { try check("accuracy") }
    func testNLLAndGibbsNLL() throws { try check("likelihood") }
    func testBrierAndMemberBrier() throws { try check("brier") }
    func testCalibration() throws { try check("calibration") }
    func testEntropyAndUncertainty() throws { try check("uncertainty") }
    func testDiversity() throws { try check("diversity") }
    func testAgreement() throws { try check("agreement") }
    func testReferenceKL() throws { try check("reference_kl") }
    func testDiscordance() throws { try check("discordance") }
    func testAURC() throws { try check("aurc") }

    /// The fixtures hold no spec the tests skip, and the tests name every built-in metric.
    func testFixturesAndTestsCoverEveryMetric() {
        let tested = Set(Self.specsByTest.values.joined())
        for fixture in MetricFixture.all {
            XCTAssertEqual(Set(fixture.expected.keys), tested, fixture.name)
            XCTAssertEqual(fixture.memberExpected.count, fixture.members, fixture.name)
        }
        let names = BuiltinMetrics.all.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "duplicate metric names")
        XCTAssertEqual(Set(names), Set(tested.map { String($0.split(separator: ":")[0]) }))
    }

    /// Scope, origin, summary and parameters as documented.
    func testDescriptors() {
        let ensemble: Set = ["gibbs_nll", "member_brier", "uncertainty", "diversity"]
        for metric in BuiltinMetrics.all {
            XCTAssertEqual(metric.origin, .builtIn, metric.name)
            XCTAssertEqual(metric.scope, ensemble.contains(metric.name) ? .ensemble : .member, metric.name)
            XCTAssertFalse(metric.summary.isEmpty || metric.summary.contains("\n"), metric.name)
            XCTAssertTrue(metric.parameters.allSatisfy { $0.defaultValue != nil }, "\(metric.name) has a required parameter")
        }
        let parameters = Dictionary(uniqueKeysWithValues: BuiltinMetrics.all.map { ($0.name, $0.parameters.map(\.synopsis)) })
        XCTAssertEqual(parameters["accuracy"], ["k=<integer> (default 1)"])
        XCTAssertEqual(parameters["calibration"], ["bins=<integer> (default 15)", "binning=<text> (default width)"])
        XCTAssertEqual(parameters.values.filter { !$0.isEmpty }.count, 2)
    }

    /// reference_kl is exactly 0 when the member is the reference, and NaN as soon as one
    /// batch lacks reference logits.
    func testReferenceKLIsZeroForTheReferenceAndNaNWithoutOne() throws {
        let fixture = try XCTUnwrap(MetricFixture.all.first { $0.examples > 20 })
        let itself = fixture.batches(sizes: [7]).map {
            PredictionBatch(classes: $0.classes, labels: $0.labels, memberLogits: [$0.referenceLogits!], referenceLogits: $0.referenceLogits)
        }
        XCTAssertEqual(try evaluate("reference_kl", classes: fixture.classes, batches: itself).first?.value, 0)
        var batches = fixture.batches(sizes: [7])
        let last = batches.removeLast()
        batches.append(PredictionBatch(classes: last.classes, labels: last.labels, memberLogits: last.memberLogits))
        XCTAssertTrue(try evaluate("reference_kl", classes: fixture.classes, batches: batches)[0].value.isNaN)
    }

    /// Agreement is NaN as soon as one batch lacks reference logits.
    func testAgreementWithoutReferenceIsNaN() throws {
        let fixture = try XCTUnwrap(MetricFixture.all.first { $0.examples > 20 })
        var batches = fixture.batches(sizes: [7])
        let withReference = try evaluate("agreement", classes: fixture.classes, batches: batches)
        XCTAssertFalse(withReference[0].value.isNaN)
        let last = batches.removeLast()
        batches.append(PredictionBatch(classes: last.classes, labels: last.labels, memberLogits: last.memberLogits))
        let without = try evaluate("agreement", classes: fixture.classes, batches: batches)
        XCTAssertEqual(without.map(\.name), ["agreement"])
        XCTAssertTrue(without[0].value.isNaN, "agreement without reference logits: \(without[0].value)")
    }

    /// Before any example every result is NaN (a mean over nothing), with the same names.
    func testNoExamplesGiveNaN() throws {
        let fixture = try XCTUnwrap(MetricFixture.all.first)
        for spec in Set(Self.specsByTest.values.joined()) {
            let results = try evaluate(spec, classes: fixture.classes, batches: [])
            XCTAssertEqual(results.map(\.name).sorted(), fixture.expected[spec]!.keys.sorted(), spec)
            XCTAssertTrue(results.allSatisfy { $0.value.isNaN }, "\(spec): \(results)")
        }
    }

    /// Bad arguments are refused when the accumulator is made, naming the parameter.
    func testBadParametersAreRefused() throws {
        let cases: [(spec: String, mentions: [String])] = [
            ("calibration:bins=0", ["'bins'", "at least 1", "0"]),
            ("calibration:bins=-3", ["'bins'", "at least 1"]),
            ("calibration:bins=ten", ["'bins'", "integer", "ten"]),
            ("calibration:binning=foo", ["'binning'", "width or mass", "foo"]),
            ("calibration:bins=15,binning=Width", ["'binning'", "Width"]),
            ("accuracy:k=0", ["'k'", "at least 1"]),
            ("accuracy:k=11", ["'k'", "at most", "10", "11"]),
            ("accuracy:top=3", ["'top'", "unknown parameter", "k"]),
            ("nll:k=1", ["'k'", "unknown parameter", "no parameters"]),
            ("aurc:bins=5", ["'bins'", "unknown parameter"]),
        ]
        for (spec, mentions) in cases {
            let parsed = try PluginSpec.parse(spec)
            let descriptor = try XCTUnwrap(BuiltinMetrics.all.first { $0.name == parsed.name }, spec)
            do {
                let arguments = try PluginArguments(spec: parsed, parameters: descriptor.parameters)
                _ = try descriptor.make(arguments, 10)
                XCTFail("\(spec) was accepted")
            } catch let error as PluginError {
                XCTAssertEqual(error.spec, spec)
                for word in mentions {
                    XCTAssertTrue(error.message.contains(word), "\(spec): '\(error.message)' does not mention \(word)")
                }
            }
        }
        // The limits themselves are accepted.
        for spec in ["calibration:bins=1", "calibration:binning=mass", "accuracy:k=10", "accuracy:k=1"] {
            let parsed = try PluginSpec.parse(spec)
            let descriptor = try XCTUnwrap(BuiltinMetrics.all.first { $0.name == parsed.name })
            XCTAssertNoThrow(try descriptor.make(try PluginArguments(spec: parsed, parameters: descriptor.parameters), 10), spec)
        }
    }
}
