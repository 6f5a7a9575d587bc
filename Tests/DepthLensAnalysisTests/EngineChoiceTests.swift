import DepthLens
import DepthLensMetrics
import Foundation
import XCTest

/// The engine a caller chooses (the context's evaluator) is the one every evaluation of
/// an analysis runs on, including the networks an analysis builds itself: reordered ones
/// and ones with recalibrated batch norms.
///
/// The reference engine computes each image alone, so its logits do not depend on the
/// path (one gate vector, or many configurations at once); the fast engine's differ from
/// them in the last bits. A value computed on the fast engine where the reference was
/// asked for therefore shows as a bit difference.
final class EngineChoiceTests: XCTestCase {
    func context(backend: Evaluator.Backend) throws -> AnalysisContext {
        let fixtures = AnalysisTests.fixtures
        let checkpoint = try Checkpoint.load(from: fixtures.appendingPathComponent("golden/official.ckpt.h5").path)
        let source = try DataSetRequest(path: fixtures.appendingPathComponent("analyses/official-labelled.h5").path)
            .open(for: checkpoint)
        let registry = PluginRegistry()
        BuiltinMetrics.register(in: registry)
        return AnalysisContext(checkpoint: checkpoint,
                               evaluator: Evaluator(network: Network(checkpoint: checkpoint), threads: 2, backend: backend),
                               source: source, batchSize: 16, survival: checkpoint.training!.survivalProbabilities!,
                               scheduleName: "linear:pL=0.5", rule: .expectation, metrics: ["accuracy", "nll"],
                               registry: registry, seed: 7)
    }

    func nll(_ table: ResultTable, _ configuration: String, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        try XCTUnwrap(table.rows.first { $0.configuration == configuration && $0.metric == "nll" }?.value,
                      "no nll row for \(configuration)", file: file, line: line)
    }

    /// The full network's NLL through the context's evaluator.
    func plainNLL(_ context: AnalysisContext) throws -> Double {
        try nll(try LesionAnalysis.run(context, lesions: [.init(.fullNetwork, dropped: [])]), "none")
    }

    func testTheFixtureTellsTheEnginesApart() throws {
        let reference = try plainNLL(try context(backend: .reference))
        let fast = try plainNLL(try context(backend: .fast))
        XCTAssertTrue(Evaluator.isFastEngineAvailable, "oneDNN did not start: the engines would not differ")
        XCTAssertNotEqual(reference.bitPattern, fast.bitPattern, "the engines agree to the bit here; the tests below would not see a wrong engine")
        XCTAssertEqual(reference, fast, accuracy: 1e-4)
    }

    func testReorderEvaluatesTheReorderedNetworksOnTheChosenEngine() throws {
        let context = try context(backend: .reference)
        // Zero swaps: the original order, evaluated as a reordered network of its own.
        let table = try ReorderAnalysis.run(context, swaps: [0], trials: 1)
        XCTAssertEqual(try nll(table, "swaps-0-trial-0").bitPattern, try plainNLL(context).bitPattern,
                       "the reordered network did not run on the reference engine")
    }

    func testRecalibratedNetworksRunOnTheChosenEngine() throws {
        let context = try context(backend: .reference)
        let path = AnalysisTests.fixtures.appendingPathComponent("analyses/recalibration.h5").path
        let train = try HDF5ImageSource(path: path, imagesDataset: "official/train_images", labelsDataset: nil)
        let table = try LesionAnalysis.run(context, lesions: [.init(.fullNetwork, dropped: [])], recalibration: train)
        // The same recalibrated network, evaluated through the context's own evaluator.
        let recalibrated = try BatchNormRecalibration.recalibrate(context.checkpoint, gates: context.deterministicGates,
                                                                  source: train, batchSize: context.batchSize)
        var direct = context
        direct.evaluator = Evaluator(network: Network(checkpoint: recalibrated), threads: 2, backend: .reference)
        XCTAssertEqual(try nll(table, "none-recalibrated").bitPattern, try plainNLL(direct).bitPattern,
                       "the recalibrated network did not run on the reference engine")
        XCTAssertNotEqual(try nll(table, "none-recalibrated"), try plainNLL(context), "recalibration changed nothing")
    }

    func testEvaluatorWithAnotherNetworkKeepsThreadsAndEngine() throws {
        let context = try context(backend: .reference)
        let other = context.evaluator.with(network: try context.evaluator.network.reordered(Array(1...context.blockCount)))
        XCTAssertEqual(other.backend, .reference)
        XCTAssertEqual(other.threads, 2)
    }
}
