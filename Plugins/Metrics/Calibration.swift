import DepthLensPluginAPI
import Foundation

/// Top-label calibration of the predictive distribution (the ensemble mean). For each
/// example, confidence = max_c p_c and correct = (argmax p == label), argmax being the
/// first maximal class. Examples are grouped into B bins; with n_b examples in bin b,
/// acc_b and conf_b their mean correctness and confidence:
///
/// - `ece` = sum_b (n_b / N) |acc_b - conf_b|
/// - `mce` = max_b |acc_b - conf_b| over non-empty bins
/// - `rmsce` = sqrt(sum_b (n_b / N) (acc_b - conf_b)^2)
///
/// Empty bins contribute nothing. Binning (`binning=`):
/// - `width` (default): B equal-width bins on [0, 1]; bin b covers (b/B, (b+1)/B], and a
///   confidence of exactly 0 goes to the first bin. This is the convention of the common
///   torch ECE implementations (`conf > lower and conf <= upper`). Streaming keeps only
///   per-bin sums: memory independent of N.
/// - `mass`: equal-mass bins. All examples are kept (memory O(N)); at the end they are
///   sorted by ascending confidence (stable: ties keep data-set order) and split into B
///   consecutive groups of as equal size as possible, the first N mod B groups one larger
///   (numpy's `array_split`). With B > N some groups are empty.
///
/// All three results are NaN before any example. A NaN probability (logits that were not
/// finite) counts as a wrong prediction of confidence 0.
final class CalibrationMetric: MetricAccumulator {
    enum Binning: String { case width, mass }

    static let descriptor = MetricDescriptor(
        name: "calibration", summary: "top-label calibration error (ece, mce, rmsce) with equal-width or equal-mass bins",
        scope: .member,
        parameters: [
            PluginParameter("bins", .integer, default: "15", help: "number of bins B (at least 1)"),
            PluginParameter("binning", .text, default: "width", help: "width: equal-width bins (b/B, (b+1)/B]; mass: equal-mass bins (keeps all examples)"),
        ],
        origin: .builtIn
    ) { arguments, classes in
        let bins = try arguments.integer("bins", atLeast: 1)
        // Equal-width bins keep three 8-byte sums per bin for every sub-network an analysis
        // evaluates at once (up to a unit of 16, and an ensemble's growing sizes): each may
        // take at most 1/256 of the machine's memory.
        let memory = ProcessInfo.processInfo.physicalMemory
        let fits = Int(min(memory / 256 / UInt64(bytesPerBin), UInt64(Int.max)))
        guard bins <= fits else {
            let gb = { (bytes: Double) in String(format: "%.1f GB", bytes / 1e9) }
            throw PluginError(spec: arguments.spec, message: "'bins' is \(bins), which needs \(gb(Double(bins) * Double(bytesPerBin))) per sub-network; at most \(fits) bins fit (1/256 of this machine's \(gb(Double(memory))) of memory per sub-network)")
        }
        let raw = try arguments.text("binning")
        guard let binning = Binning(rawValue: raw) else {
            throw PluginError(spec: arguments.spec, message: "'binning' must be width or mass, found '\(raw)'")
        }
        return CalibrationMetric(bins: bins, binning: binning, classes: classes)
    }

    /// Memory per equal-width bin: a count, a sum of confidences, a number correct.
    static let bytesPerBin = 24

    private let bins: Int
    private let binning: Binning
    private let classes: Int
    // Equal width: per-bin count, sum of confidences, number correct.
    private var binCounts: [Int]
    private var binConfidence: [Double]
    private var binCorrect: [Double]
    // Equal mass: every example's confidence and correctness, in data-set order.
    private var confidences: [Double] = []
    private var correct: [Bool] = []

    init(bins: Int, binning: Binning, classes: Int) {
        self.bins = bins
        self.binning = binning
        self.classes = classes
        binCounts = Array(repeating: 0, count: bins)
        binConfidence = Array(repeating: 0, count: bins)
        binCorrect = Array(repeating: 0, count: bins)
    }

    /// The equal-width bin of `confidence`: the b with b/B < confidence <= (b+1)/B (the
    /// edges computed as Double(b) / Double(B)), or 0 for a confidence of 0 or less.
    private func widthBin(_ confidence: Double) -> Int {
        let B = Double(bins)
        guard confidence.isFinite else { return confidence > 0 ? bins - 1 : 0 }
        var b = min(max(Int((confidence * B).rounded(.up)) - 1, 0), bins - 1)
        // Settle rounding of confidence * B against the edges themselves.
        while b > 0 && confidence <= Double(b) / B { b -= 1 }
        while b < bins - 1 && confidence > Double(b + 1) / B { b += 1 }
        return b
    }

    func add(_ batch: PredictionBatch) {
        validate(batch, classes: classes, metric: "calibration")
        let p = batch.meanProbabilities
        for (i, label) in batch.labels.enumerated() {
            let (confidence, isCorrect) = topPrediction(p, row: i, classes: classes, label: label)
            switch binning {
            case .width:
                let b = widthBin(confidence)
                binCounts[b] += 1
                binConfidence[b] += confidence
                binCorrect[b] += isCorrect ? 1 : 0
            case .mass:
                confidences.append(confidence)
                correct.append(isCorrect)
            }
        }
    }

    func results() -> [MetricResult] {
        var groups: [(count: Int, confidence: Double, correct: Double)] = []
        switch binning {
        case .width:
            groups = (0..<bins).map { (binCounts[$0], binConfidence[$0], binCorrect[$0]) }
        case .mass:
            let order = confidences.indices.sorted { (confidences[$0], $0) < (confidences[$1], $1) }
            let n = order.count
            var start = 0
            for b in 0..<bins {
                let size = n / bins + (b < n % bins ? 1 : 0)
                let members = order[start..<(start + size)]
                groups.append((size, members.reduce(0) { $0 + confidences[$1] }, members.reduce(0) { $0 + (correct[$1] ? 1 : 0) }))
                start += size
            }
        }
        let total = Double(groups.reduce(0) { $0 + $1.count })
        var ece = 0.0, mce = 0.0, squared = 0.0
        for group in groups where group.count > 0 {
            let n = Double(group.count)
            let gap = abs(group.correct / n - group.confidence / n)
            ece += n / total * gap
            squared += n / total * gap * gap
            mce = max(mce, gap)
        }
        if total == 0 { (ece, mce, squared) = (.nan, .nan, .nan) }
        return [MetricResult("ece", ece), MetricResult("mce", mce), MetricResult("rmsce", squared.squareRoot())]
    }
}
