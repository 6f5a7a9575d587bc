import DepthLensPluginKit
import Foundation

/// Cosine decay from 1 to p_L: p_l = pL + (1 - pL)(1 + cos(pi l / L)) / 2.
struct Cosine: PluginSchedule {
    static let name = "cosine"
    static let summary = "p_l = pL + (1 - pL)(1 + cos(pi l/L))/2, a cosine decay to pL"
    static let parameters = [PluginKitParameter("pL", kind: "number", default: "0.5", help: "survival probability of the last block")]

    static func survivalProbabilities(arguments: [String: String], blocks: [PluginBlock]) throws -> [Double] {
        guard let pL = Double(arguments["pL"] ?? ""), (0...1).contains(pL) else {
            throw PluginKitError("pL must be a number in [0, 1], found '\(arguments["pL"] ?? "")'")
        }
        let count = Double(blocks.count)
        return blocks.map { block -> Double in
            let angle = Double.pi * Double(block.index) / count
            return pL + (1 - pL) * (1 + cos(angle)) / 2
        }
    }
}

/// The mean top-class probability of the members' average: a confidence summary.
final class MeanConfidence: PluginMetric {
    static let name = "mean_confidence"
    static let summary = "mean over examples of the ensemble's top-class probability"
    private let classes: Int
    private var sum = 0.0
    private var count = 0

    init(arguments: [String: String], classes: Int) throws { self.classes = classes }

    func add(memberLogits: [[Float]], labels: [Int], reference: [Float]?) throws {
        for n in 0..<labels.count {
            var mean = [Double](repeating: 0, count: classes)
            for logits in memberLogits {
                let row = logits[(n * classes)..<((n + 1) * classes)].map(Double.init)
                let top = row.max()!
                let exps = row.map { exp($0 - top) }
                let total = exps.reduce(0, +)
                for c in 0..<classes { mean[c] += exps[c] / total / Double(memberLogits.count) }
            }
            sum += mean.max()!
            count += 1
        }
    }

    func results() -> [(name: String, value: Double)] { [("mean_confidence", count == 0 ? .nan : sum / Double(count))] }
}

/// Called once by DepthLens when it loads the library.
@_cdecl("depthlens_plugin_init")
public func pluginInit() {
    DepthLensPlugin.export(schedules: [Cosine.self], metrics: [MeanConfidence.self])
}
