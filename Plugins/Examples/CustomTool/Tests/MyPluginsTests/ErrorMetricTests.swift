import DepthLensPluginAPI
import DepthLensMetrics
import MyPlugins
import XCTest

/// The error metric is 1 - the built-in accuracy, for any k, streamed in any batches.
final class ErrorMetricTests: XCTestCase {
    func testIsOneMinusAccuracy() throws {
        let registry = PluginRegistry()
        BuiltinMetrics.register(in: registry)
        MyPlugins.register(in: registry)
        var generator = SystemRandomNumberGenerator()
        let classes = 5, count = 40
        let labels = (0..<count).map { _ in Int.random(in: 0..<classes, using: &generator) }
        // Members of rounded logits, so that ties occur.
        let members = (0..<3).map { _ in (0..<count * classes).map { _ in Float(Int.random(in: -2...2, using: &generator)) } }
        for k in [1, 2, 5] {
            let (_, error) = try registry.makeMetric("error:k=\(k)", classes: classes)
            let (_, accuracy) = try registry.makeMetric("accuracy:k=\(k)", classes: classes)
            for range in [0..<7, 7..<8, 8..<40] {
                let batch = PredictionBatch(classes: classes, labels: Array(labels[range]),
                                            memberLogits: members.map { Array($0[(range.lowerBound * classes)..<(range.upperBound * classes)]) })
                error.add(batch)
                accuracy.add(batch)
            }
            let e = try XCTUnwrap(error.results().first)
            XCTAssertEqual(e.name, k == 1 ? "error" : "top\(k)_error")
            XCTAssertEqual(e.value, 1 - accuracy.results()[0].value, accuracy: 1e-15, "k=\(k)")
        }
    }

    func testCountsMissesAndRejectsKAboveC() throws {
        let registry = PluginRegistry()
        MyPlugins.register(in: registry)
        let (descriptor, error) = try registry.makeMetric("error", classes: 2)
        XCTAssertEqual(descriptor.scope, .member)
        XCTAssertTrue(error.results()[0].value.isNaN, "NaN before any example")
        // Example 1 is right, example 2 wrong, example 3 a tie broken towards class 0 (wrong).
        error.add(PredictionBatch(classes: 2, labels: [0, 0, 1], memberLogits: [[2, 0, 0, 2, 1, 1]]))
        XCTAssertEqual(error.results(), [MetricResult("error", 2.0 / 3)])
        XCTAssertThrowsError(try registry.makeMetric("error:k=3", classes: 2)) {
            XCTAssertTrue("\($0)".contains("'k' must be at most the number of classes (2), found 3"), "\($0)")
        }
    }
}
