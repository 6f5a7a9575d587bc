import DepthLensPluginAPI
import Foundation
import MyPlugins
import XCTest

/// The exponential schedule through a registry, as `my-depthlens` uses it.
final class ExponentialScheduleTests: XCTestCase {
    let registry: PluginRegistry = {
        let registry = PluginRegistry()
        MyPlugins.register(in: registry)
        return registry
    }()

    /// The blocks of a ResNet whose stages hold `stages` blocks, widths 4, 8, 16... and
    /// stride 2 from the second stage on: the first block of each later stage downsamples.
    func architecture(stages: [Int]) -> [BlockSpec] {
        var blocks: [BlockSpec] = []
        for (s, count) in stages.enumerated() {
            for b in 0..<count {
                let first = s > 0 && b == 0
                blocks.append(BlockSpec(index: blocks.count + 1, stage: s + 1, indexInStage: b,
                                        inChannels: first ? 2 << s : 4 << s, midChannels: 4 << s, outChannels: 4 << s,
                                        stride: first ? 2 : 1, shortcut: first ? .zeroPadded : .identity))
            }
        }
        return blocks
    }

    func testFollowsTheFormula() throws {
        let p = try registry.survivalProbabilities("exponential:pL=0.5", for: architecture(stages: [2, 2, 2]))
        // pL^(l/L) for L = 6, from numpy: 0.5 ** (np.arange(1, 7) / 6)
        let expected = [0.8908987181403393, 0.7937005259840998, 0.7071067811865476,
                        0.6299605249474366, 0.5612310241546865, 0.5]
        XCTAssertEqual(p.count, 6)
        for (l, (a, b)) in zip(p, expected).enumerated() { XCTAssertEqual(a, b, accuracy: 1e-15, "block \(l + 1)") }
    }

    func testConstantRatioAndLastBlockAtPL() throws {
        let p = try registry.survivalProbabilities("exponential:pL=0.2", for: architecture(stages: [18, 18, 18]))
        XCTAssertEqual(p.last!, 0.2, accuracy: 1e-15)
        let ratio = pow(0.2, 1.0 / 54)
        for l in 1..<p.count { XCTAssertEqual(p[l] / p[l - 1], ratio, accuracy: 1e-12, "block \(l + 1)") }
        // Convexity: at or below the paper's linear decay to the same pL.
        let linear = (1...54).map { 1 - Double($0) / 54 * 0.8 }
        for (a, b) in zip(p, linear) { XCTAssertLessThanOrEqual(a, b + 1e-15) }
    }

    func testDefaultEdgeValuesAndGenericOptions() throws {
        let arch = architecture(stages: [2, 2])
        XCTAssertEqual(try registry.survivalProbabilities("exponential", for: arch).last!, 0.5, accuracy: 1e-15)
        XCTAssertEqual(try registry.survivalProbabilities("exponential:pL=1", for: arch), [1, 1, 1, 1])
        XCTAssertEqual(try registry.survivalProbabilities("exponential:pL=0", for: arch), [0, 0, 0, 0])
        // per_stage restarts the decay in each stage; only=identity keeps block 3 (downsampling).
        let perStage = try registry.survivalProbabilities("exponential:pL=0.25,per_stage=true", for: arch)
        XCTAssertEqual(perStage, [0.5, 0.25, 0.5, 0.25])
        let identity = try registry.survivalProbabilities("exponential:pL=0.25,only=identity", for: arch)
        XCTAssertEqual(identity[2], 1)
    }

    func testBadArgumentsAreRejected() {
        let arch = architecture(stages: [2])
        for (spec, words) in [("exponential:pL=1.5", "'pL' must be in [0, 1]"), ("exponential:pL=x", "'pL' must be a number"),
                              ("exponential:q=1", "unknown parameter 'q'")] {
            XCTAssertThrowsError(try registry.survivalProbabilities(spec, for: arch)) {
                XCTAssertTrue("\($0)".contains(words), "\($0)")
            }
        }
    }

    func testDescriptorIsLinked() throws {
        let descriptor = try registry.schedule(named: "exponential")
        XCTAssertEqual(descriptor.origin, .linked("MyPlugins"))
        XCTAssertEqual(descriptor.parameters.map(\.synopsis), ["pL=<number> (default 0.5)"])
    }
}
