import DepthLens
import Foundation
import XCTest

/// The one pass over a data set that every evaluation uses: consecutive batches covering
/// the source exactly once, in order; a short last batch; nothing for an empty source;
/// a stop request honoured before the next batch is read.
final class BatchStreamTests: XCTestCase {
    /// Images whose single pixel is their index, labelled index % 3; counts the images read.
    final class IndexedSource: ImageSource {
        let count: Int
        var channels: Int { 1 }
        var height: Int { 1 }
        var width: Int { 1 }
        var name: String { "indexed" }
        private(set) var reads: [Range<Int>] = []

        init(count: Int) { self.count = count }

        func pixels(_ range: Range<Int>) throws -> [Float] {
            reads.append(range)
            return range.map(Float.init)
        }

        func labels(_ range: Range<Int>) throws -> [Int]? { range.map { $0 % 3 } }
    }

    /// Walks `stream`, returning what each batch held and the progress reports.
    func walk(_ stream: BatchStream) throws -> (batches: [(index: Int, range: Range<Int>, pixels: [Float], labels: [Int])],
                                               progress: [[Int]]) {
        var stream = stream
        var progress: [[Int]] = []
        stream.progress = { progress.append([$0, $1]) }
        var batches: [(Int, Range<Int>, [Float], [Int])] = []
        try stream.forEach { batch in batches.append((batch.index, batch.range, try batch.images().pixels, batch.labels)) }
        return (batches.map { (index: $0.0, range: $0.1, pixels: $0.2, labels: $0.3) }, progress)
    }

    func testBatchesCoverTheSourceOnceInOrderWithAShortLastBatch() throws {
        let source = IndexedSource(count: 10)
        let (batches, progress) = try walk(BatchStream(source, batchSize: 4, labels: try source.labels(0..<10)))
        XCTAssertEqual(batches.map(\.index), [0, 1, 2])
        XCTAssertEqual(batches.map(\.range), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(batches.flatMap(\.pixels), (0..<10).map(Float.init), "every image once, in order")
        XCTAssertEqual(batches.flatMap(\.labels), (0..<10).map { $0 % 3 }, "labels sliced with their images")
        XCTAssertEqual(progress, [[4, 10], [8, 10], [10, 10]])
    }

    func testASourceThatDividesEvenlyEndsWithoutAnEmptyBatch() throws {
        let (batches, _) = try walk(BatchStream(IndexedSource(count: 8), batchSize: 4))
        XCTAssertEqual(batches.map(\.range), [0..<4, 4..<8])
        XCTAssertEqual(batches.flatMap(\.labels), [], "no labels given, none handed out")
    }

    func testAnEmptySourceHasNoBatchesAndNoProgress() throws {
        let source = IndexedSource(count: 0)
        let (batches, progress) = try walk(BatchStream(source, batchSize: 4, labels: []))
        XCTAssertTrue(batches.isEmpty)
        XCTAssertTrue(progress.isEmpty)
        XCTAssertTrue(source.reads.isEmpty)
    }

    func testImagesAreReadOnlyWhenABatchAsksForThem() throws {
        let source = IndexedSource(count: 10)
        var ranges: [Range<Int>] = []
        try BatchStream(source, batchSize: 3).forEach { batch in
            ranges.append(batch.range)
            if batch.index == 1 { _ = try batch.images() }
        }
        XCTAssertEqual(ranges, [0..<3, 3..<6, 6..<9, 9..<10])
        XCTAssertEqual(source.reads, [3..<6])
    }

    func testAStopRequestEndsThePassBeforeTheNextBatch() throws {
        let source = IndexedSource(count: 10)
        let stop = StopRequest()
        var seen: [Int] = []
        var progress: [Int] = []
        let stream = BatchStream(source, batchSize: 4, stopRequest: stop, progress: { done, _ in progress.append(done) })
        XCTAssertThrowsError(try stream.forEach { batch in
            seen.append(batch.index)
            _ = try batch.images()
            if batch.index == 1 { stop.request(15) }
        }) { XCTAssertEqual($0 as? Interrupted, Interrupted(code: 15)) }
        XCTAssertEqual(seen, [0, 1], "the batch in progress finishes; the next is not started")
        XCTAssertEqual(progress, [4, 8])
        XCTAssertEqual(source.reads, [0..<4, 4..<8])

        // A request made before the pass stops it before anything is read.
        let fresh = IndexedSource(count: 10)
        XCTAssertThrowsError(try BatchStream(fresh, batchSize: 4, stopRequest: stop).forEach { _ = try $0.images() })
        XCTAssertTrue(fresh.reads.isEmpty)
    }

    func testAMinimumCountEndsThePassAtAShorterBatch() throws {
        // As batch-norm recalibration needs: a last batch of one image is left out.
        var stream = BatchStream(IndexedSource(count: 9), batchSize: 4)
        stream.minimumCount = 2
        XCTAssertEqual(try walk(stream).batches.map(\.range), [0..<4, 4..<8])
        XCTAssertEqual(stream.ranges, [0..<4, 4..<8])
        var single = BatchStream(IndexedSource(count: 3), batchSize: 1)
        single.minimumCount = 2
        XCTAssertEqual(try walk(single).batches.count, 0, "batches of one image are never enough")
    }

    func testEvaluatedPassHandsEachConfigurationsLogitsOfEachBatch() throws {
        let checkpoint = try Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))
        let source = try DataSetRequest(path: Fixtures.path("analyses/official-labelled.h5")).open(for: checkpoint)
        let evaluator = Evaluator(network: Network(checkpoint: checkpoint), threads: 1)
        let all = [Float](repeating: 1, count: checkpoint.blockCount)
        var firstDropped = all
        firstDropped[0] = 0
        let configurations = [firstDropped, all]
        var ranges: [Range<Int>] = []
        try BatchStream(source, batchSize: 7).logits(evaluator, configurations: configurations) { batch, logits in
            ranges.append(batch.range)
            XCTAssertEqual(logits.count, 2)
            for (i, gates) in configurations.enumerated() {
                let expected = try evaluator.logits(try source.batch(batch.range), gates: .shared(gates)).scalars
                XCTAssertEqual(logits[i].count, expected.count)
                for (a, b) in zip(logits[i], expected) { XCTAssertEqual(a, b, accuracy: 1e-4) }
            }
            XCTAssertNotEqual(logits[0], logits[1], "the configurations differ, so their order is checked")
        }
        XCTAssertEqual(ranges.map(\.count).reduce(0, +), source.count)
        XCTAssertEqual(ranges.last?.upperBound, source.count)
    }
}
