import DepthLens
import DepthLensMetrics
import Foundation
import XCTest

/// One case written by tools/make_metric_fixtures.py: inputs and numpy/scipy's values.
struct MetricFixture: Decodable {
    let name: String
    let members: Int
    let examples: Int
    let classes: Int
    let labels: [Int]
    /// M arrays of N x C logits, row-major (multiples of 1/64, exact in Float).
    let memberLogits: [[Float]]
    let referenceLogits: [Float]
    /// spec -> result name -> value, for the M-member batch.
    let expected: [String: [String: Double]]
    /// member m -> spec -> result name -> value, member-scope metrics on member m alone.
    let memberExpected: [[String: [String: Double]]]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/metrics")

    /// Every fixture, by name.
    static let all: [MetricFixture] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return files.filter { $0.hasSuffix(".json") }.sorted().map { file in
            let data = try! Data(contentsOf: directory.appendingPathComponent(file))
            return try! decoder.decode(MetricFixture.self, from: data)
        }
    }()

    /// The data split into consecutive batches of the given sizes (the last one cut short
    /// and the pattern repeated until every example is used).
    func batches(sizes: [Int], withReference: Bool = true) -> [PredictionBatch] {
        var result: [PredictionBatch] = []
        var start = 0, step = 0
        while start < examples {
            let end = min(examples, start + sizes[step % sizes.count])
            let range = (start * classes)..<(end * classes)
            result.append(PredictionBatch(
                classes: classes, labels: Array(labels[start..<end]),
                memberLogits: memberLogits.map { Array($0[range]) },
                referenceLogits: withReference ? Array(referenceLogits[range]) : nil))
            start = end
            step += 1
        }
        return result
    }

    /// Ways to stream the data: all at once, uneven batches, and one example at a time.
    var splits: [(name: String, sizes: [Int])] {
        [("one batch", [examples]), ("uneven", [1, 4, 2, 9, 3, 17, 6]), ("singles", [1])]
    }
}

/// Runs `spec` over `batches` and returns its results.
func evaluate(_ spec: String, classes: Int, batches: [PredictionBatch]) throws -> [MetricResult] {
    let registry = PluginRegistry()
    BuiltinMetrics.register(in: registry)
    let accumulator = try registry.makeMetric(spec, classes: classes).accumulator
    for batch in batches { accumulator.add(batch) }
    return accumulator.results()
}

/// Tolerance for Swift versus numpy: 1e-9 absolute plus 1e-9 relative. Both compute in
/// double from the same float32 inputs; they differ only in summation order and libm.
func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-9 + 1e-9 * abs(b) }

/// The largest |Swift - numpy| any comparison has seen, reported by the tests.
nonisolated(unsafe) var largestDifference = 0.0

/// Checks `spec` on every fixture and split, on the M-member batch and, for member-scope
/// metrics, on each member alone; returns how many values were compared.
@discardableResult
func checkAgainstNumpy(_ specs: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Int {
    var compared = 0
    XCTAssertFalse(MetricFixture.all.isEmpty, "no fixtures found in \(MetricFixture.directory.path)", file: file, line: line)
    for fixture in MetricFixture.all {
        for spec in specs {
            let isMemberScope = fixture.memberExpected.allSatisfy { $0[spec] != nil }
            for split in fixture.splits {
                let batches = fixture.batches(sizes: split.sizes)
                var runs: [(what: String, batches: [PredictionBatch], expected: [String: Double]?)] = [
                    ("ensemble", batches, fixture.expected[spec]),
                ]
                if isMemberScope {
                    for m in 0..<fixture.members {
                        runs.append(("member \(m)", batches.map { $0.member(m) }, fixture.memberExpected[m][spec]))
                    }
                }
                for run in runs {
                    let context = "\(fixture.name) \(spec) \(run.what) (\(split.name))"
                    guard let expected = run.expected else {
                        XCTFail("\(context): no expected values in the fixture", file: file, line: line)
                        continue
                    }
                    let results = try evaluate(spec, classes: fixture.classes, batches: run.batches)
                    XCTAssertEqual(results.map(\.name).sorted(), expected.keys.sorted(), "\(context): result names", file: file, line: line)
                    for result in results {
                        guard let want = expected[result.name] else { continue }
                        largestDifference = max(largestDifference, abs(result.value - want))
                        XCTAssertTrue(close(result.value, want), "\(context): \(result.name) = \(result.value), numpy \(want)", file: file, line: line)
                        compared += 1
                    }
                }
            }
        }
    }
    return compared
}
