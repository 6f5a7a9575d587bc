import DepthLensPluginAPI
import Foundation

/// Exponential (geometric) decay to p_L: p_l = pL^(l/L), for blocks l = 1...L.
///
/// Every block survives a constant factor pL^(1/L) less often than the block before it
/// (p_{l+1} / p_l is the same for every l), and the last block has exactly pL. As x -> pL^x
/// is convex, each p_l lies at or below the paper's linear decay to the same pL: the same
/// last block, more dropping in between, fewer expected active blocks. pL = 0 drops every
/// block (0^(l/L) = 0).
public struct ExponentialSchedule: SurvivalSchedule {
    public let pL: Double

    public init(pL: Double) { self.pL = pL }

    public static let descriptor = ScheduleDescriptor(
        name: "exponential", summary: "p_l = pL^(l/L), a geometric decay to pL",
        parameters: [PluginParameter("pL", .number, default: "0.5", help: "survival probability of the last block")],
        origin: .linked("MyPlugins")
    ) { arguments in ExponentialSchedule(pL: try arguments.number("pL", in: 0...1)) }

    public func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        let count = Double(blocks.count)
        return blocks.map { pow(pL, Double($0.index) / count) }
    }
}
