import DepthLens
import Foundation
import XCTest

/// The random streams of numbered trials (random lesions, fixed depths, reorderings):
/// one of its own for every group and trial, with the streams of the first 10,000 trials
/// those of the first scheme, `base + group * 10_000 + trial`, which repeated streams from
/// trial 10,000 on (issue 23).
final class TrialStreamTests: XCTestCase {
    func firstScheme(_ kind: TrialStreams.Kind, _ group: Int, _ trial: Int) -> Int { kind.rawValue * 1_000_000 + group * 10_000 + trial }

    func testTrialsBelowTenThousandKeepTheirStreamsSoEarlierResultsAreUnchanged() {
        for kind in [TrialStreams.Kind.randomLesion, .fixedDepth, .reordering] {
            for (group, trial) in [(0, 0), (1, 0), (3, 17), (12, 9_999), (99, 5_000), (1_000, 1)] {
                XCTAssertEqual(TrialStreams.index(kind, group: group, trial: trial), firstScheme(kind, group, trial))
            }
        }
    }

    func testEveryGroupAndTrialHasAStreamOfItsOwnPastTenThousandTrials() {
        // The first scheme's collision, which the new numbering must not repeat.
        XCTAssertEqual(firstScheme(.randomLesion, 0, 10_000), firstScheme(.randomLesion, 1, 0))
        var seen = Set<Int>()
        var count = 0
        for kind in [TrialStreams.Kind.randomLesion, .fixedDepth, .reordering] {
            for group in 0...20 {
                for trial in 0..<20_000 {
                    seen.insert(TrialStreams.index(kind, group: group, trial: trial))
                    count += 1
                }
            }
            // The far corners: the largest group and trial that get distinct streams.
            for (group, trial) in [(TrialStreams.groupLimit - 1, TrialStreams.trialLimit - 1), (TrialStreams.groupLimit - 1, 10_000),
                                   (0, TrialStreams.trialLimit - 1)] {
                seen.insert(TrialStreams.index(kind, group: group, trial: trial))
                count += 1
            }
        }
        XCTAssertEqual(seen.count, count, "no two (kind, group, trial) share a stream number")
        XCTAssertTrue(seen.allSatisfy { $0 > 0 }, "stream numbers stay positive")
        // Distinct stream numbers give distinct generators (the seed is one to one in it).
        var first = SeededGenerator.stream(seed: 7, TrialStreams.index(.randomLesion, group: 0, trial: 10_000))
        var second = SeededGenerator.stream(seed: 7, TrialStreams.index(.randomLesion, group: 1, trial: 0))
        XCTAssertNotEqual(first.next(), second.next())
    }

    /// With the first scheme, trial 10,000 + t of k = 2 drew from the stream of trial t of
    /// k = 3, and the partial shuffle made its two deleted blocks a subset of those three,
    /// every time. Independent draws make that happen 3 times in 15 (C(3,2) / C(6,2)).
    func testDeletionsOfTrialsPastTenThousandAreIndependentOfTheNextK() {
        let blocks = Array(1...6)
        let late = LesionAnalysis.randomBlocks(k: 2, among: blocks, trials: 10_000..<10_300, seed: 0)
        let early = LesionAnalysis.randomBlocks(k: 3, among: blocks, trials: 0..<300, seed: 0)
        let contained = zip(late, early).filter { Set($0.0.dropped).isSubset(of: Set($0.1.dropped)) }.count
        XCTAssertLessThan(contained, 150, "about 60 of 300 by chance; all 300 with the first scheme")
        XCTAssertGreaterThan(contained, 0)
        XCTAssertEqual(Set(late.map(\.dropped)).count, 15, "every pair of 6 blocks is drawn")
    }

    func testMoreTrialsOrGroupsThanHaveDistinctStreamsAreRefused() throws {
        XCTAssertNoThrow(try TrialStreams.check(groups: [0, 5, TrialStreams.groupLimit - 1], trials: TrialStreams.trialLimit))
        XCTAssertThrowsError(try TrialStreams.check(groups: [3], trials: TrialStreams.trialLimit + 1)) { error in
            XCTAssertEqual("\(error)", "\(TrialStreams.trialLimit + 1) trials asked, but only at most \(TrialStreams.trialLimit) trials per k, depth or number of swaps draw from distinct random streams")
        }
        XCTAssertThrowsError(try TrialStreams.check(groups: [TrialStreams.groupLimit], trials: 2))
        let context = try AnalysisTests.context("official")
        XCTAssertThrowsError(try DepthAnalysis.run(context, depths: [2], trials: TrialStreams.trialLimit + 1)) { error in
            XCTAssertTrue(error is TrialCountError, "\(error)")
        }
    }
}
