import DepthLens
import Foundation
import XCTest

/// `--shard K/N` in the library: the plan of an analysis, its split into shards, and shards
/// that together compute every unit once and replay to the unsharded table.
final class ShardSplitTests: XCTestCase {
    func context() throws -> AnalysisContext { try AnalysisTests.context("official") }

    /// The plan of a lesion study (each block alone and 30 random lesions) and an ensemble.
    func plan(_ context: AnalysisContext) throws -> WorkPlan {
        let plan = WorkPlan()
        var planning = context
        planning.scope = .planning(plan)
        _ = try LesionAnalysis.run(planning, lesions: lesions(context))
        _ = try EnsembleAnalysis.run(planning, members: 3, granularity: .pass)
        return plan
    }

    func lesions(_ context: AnalysisContext) -> [LesionAnalysis.Lesion] {
        LesionAnalysis.singleBlocks(count: context.blockCount)
            + LesionAnalysis.randomBlocks(count: context.blockCount, maxK: 3, trials: 10, seed: 7).filter { !$0.dropped.isEmpty }
    }

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("depthlens-shard-\(UUID().uuidString).journal").path
    }

    func testAPlanComputesNothingAndListsEveryUnitWithItsCost() throws {
        let context = try context()
        let plan = try plan(context)
        XCTAssertEqual(plan.sections.map(\.kind), [.subNetworks, .ensembleBatches])
        XCTAssertEqual(plan.sections[0].units.count, lesions(context).count, "one unit per lesion")
        XCTAssertEqual(plan.sections[1].units.count, (context.source.count + context.batchSize - 1) / context.batchSize, "one unit per batch")
        XCTAssertTrue(plan.units.allSatisfy { $0.cost > 0 })
        XCTAssertEqual(Set(plan.units.map(\.key)).count, plan.units.count, "unit keys are unique")
    }

    func testDeletingAnEarlyBlockCostsMoreThanALateOneWhenPrefixesAreShared() throws {
        let context = try context()
        let plan = try plan(context)
        // Units 1...L of the lesion section are blocks 1...L deleted alone (unit 0: none).
        let single = plan.sections[0].units[1...context.blockCount].map(\.cost)
        XCTAssertGreaterThan(single.first!, single.last!)
        for l in 1..<single.count { XCTAssertGreaterThanOrEqual(single[l - 1], single[l], "block \(l) vs block \(l + 1)") }
    }

    func testTheSplitIsDeterministicDisjointCoveringAndBalanced() throws {
        let plan = try plan(try context())
        let all = plan.units.map(\.key)
        let largest = plan.units.map(\.cost).max()! + plan.sections.map(\.overhead).reduce(0, +)
        for n in 1...9 {
            let split = ShardSplit(plan, shards: n)
            XCTAssertEqual(split, ShardSplit(plan, shards: n), "the same plan gives the same split")
            let keys = split.shards.flatMap { $0 }
            XCTAssertEqual(keys.count, Set(keys).count, "\(n) shards: a unit in two shards")
            XCTAssertEqual(Set(keys), Set(all), "\(n) shards: every unit in some shard")
            // Longest-processing-time first: no shard exceeds the mean by more than one unit
            // and the sections' overheads.
            let mean = split.costs.reduce(0, +) / Double(n)
            XCTAssertLessThanOrEqual(split.costs.max()!, mean + largest, "\(n) shards: \(split.costs)")
            let estimated = zip(split.shards, split.costs).map { keys, cost in (keys, cost) }
            for (keys, cost) in estimated where !keys.isEmpty { XCTAssertGreaterThan(cost, 0) }
        }
        XCTAssertLessThanOrEqual(ShardSplit(plan, shards: 4).imbalance, 1.3, "many small units balance well")
    }

    func testShardSpecIsKOfN() throws {
        XCTAssertEqual(try ShardSpec(parsing: "2/8"), try ShardSpec(index: 2, count: 8))
        for bad in ["0/4", "5/4", "3/0", "x", "1/", "/4", "1-4", "-1/4"] {
            XCTAssertThrowsError(try ShardSpec(parsing: bad), bad)
        }
        XCTAssertThrowsError(try ShardSpec(parsing: "5/4")) { XCTAssertTrue("\($0)".contains("between 1 and N"), "\($0)") }
    }

    /// Three shards each compute only their units into their own journals; a replay of their
    /// union computes nothing and gives the unsharded tables.
    func testShardsComputeEachUnitOnceAndTheirUnionReplaysToTheUnshardedTables() throws {
        let context = try context()
        let lesionTable = try LesionAnalysis.run(context, lesions: lesions(context))
        let ensembleTable = try EnsembleAnalysis.run(context, members: 3, granularity: .pass)
        let plan = try plan(context)
        let split = ShardSplit(plan, shards: 3)
        let configuration = [("analysis", "shard test")]
        var saved: [String: [String]] = [:]
        var paths: [String] = []
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        for owned in split.shards {
            var shard = context
            shard.scope = .shard(Set(owned))
            let path = temporaryPath()
            paths.append(path)
            shard.journal = try ProgressJournal(path: path, configuration: configuration, resume: false)
            _ = try LesionAnalysis.run(shard, lesions: lesions(context))
            _ = try EnsembleAnalysis.run(shard, members: 3, granularity: .pass)
            XCTAssertEqual(Set(shard.journal!.units.keys), Set(owned), "a shard computes its own units and no other")
            XCTAssertEqual(shard.journal!.recordedUnits, owned.count, "each once")
            saved.merge(shard.journal!.units) { a, _ in a }
        }
        XCTAssertEqual(saved.count, plan.units.count)
        let path = temporaryPath()
        paths.append(path)
        let merged = try ProgressJournal(path: path, configuration: configuration, resume: false)
        try merged.record(saved.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        var replay = context
        replay.scope = .replay
        replay.journal = merged
        XCTAssertEqual(try LesionAnalysis.run(replay, lesions: lesions(context)).resultsCSV, lesionTable.resultsCSV)
        let ensemble = try EnsembleAnalysis.run(replay, members: 3, granularity: .pass)
        XCTAssertEqual(ensemble.resultsCSV, ensembleTable.resultsCSV)
        XCTAssertEqual(ensemble.masksCSV, ensembleTable.masksCSV)
        XCTAssertEqual(merged.recordedUnits, saved.count, "the replay computed nothing")
    }

    func testAReplayRefusesToComputeAMissingUnit() throws {
        let context = try context()
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var replay = context
        replay.scope = .replay
        replay.journal = try ProgressJournal(path: path, configuration: [("analysis", "x")], resume: false)
        XCTAssertThrowsError(try LesionAnalysis.run(replay, lesions: lesions(context))) {
            XCTAssertTrue("\($0)".contains("that a merge needs"), "\($0)")
        }
    }
}
