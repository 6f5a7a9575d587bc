import DepthLensAnalysis
import Foundation

/// A line chart drawn as standalone SVG: axes with round-number ticks, axis labels, a
/// legend, markers, and shaded bands (such as mean +/- one standard deviation over
/// trials). Opens in any browser.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Lower and upper edge of a band at each point, when there are trials.
        public var band: [(x: Double, low: Double, high: Double)]?
        /// Draw markers only (no connecting line).
        public var markersOnly: Bool

        public init(name: String, points: [(x: Double, y: Double)], band: [(x: Double, low: Double, high: Double)]? = nil,
                    markersOnly: Bool = false) {
            self.name = name
            self.points = points.filter { $0.x.isFinite && $0.y.isFinite }
            self.band = band?.filter { $0.x.isFinite && $0.low.isFinite && $0.high.isFinite }
            self.markersOnly = markersOnly
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A horizontal reference line (such as the deterministic network's value).
    public var reference: (name: String, y: Double)?
    public var width = 760.0
    public var height = 440.0

    public init(title: String, xLabel: String, yLabel: String, series: [Series], reference: (name: String, y: Double)? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.reference = reference
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// Round-number ticks covering [low, high].
    static func ticks(_ low: Double, _ high: Double, target: Int = 6) -> [Double] {
        guard high > low else { return [low] }
        let raw = (high - low) / Double(target)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var t = (low / step).rounded(.down) * step
        while t <= high + step * 1e-9 {
            if t >= low - step * 1e-9 { ticks.append(abs(t) < step * 1e-9 ? 0 : t) }
            t += step
        }
        return ticks
    }

    static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        let text = String(format: "%.4g", v)
        return text
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The SVG document.
    public var svg: String {
        let left = 72.0, right = 200.0, top = 40.0, bottom = 56.0
        let plotW = width - left - right, plotH = height - top - bottom
        var xs = series.flatMap { $0.points.map(\.x) + ($0.band?.map(\.x) ?? []) }
        var ys = series.flatMap { $0.points.map(\.y) + ($0.band?.flatMap { [$0.low, $0.high] } ?? []) }
        if let reference { ys.append(reference.y) }
        if xs.isEmpty { xs = [0, 1] }
        if ys.isEmpty { ys = [0, 1] }
        var (x0, x1) = (xs.min()!, xs.max()!)
        var (y0, y1) = (ys.min()!, ys.max()!)
        if x0 == x1 { x0 -= 1; x1 += 1 }
        if y0 == y1 { y0 -= 0.5; y1 += 0.5 }
        // A margin, so a curve or reference line at an extreme never hides under the frame.
        let margin = (y1 - y0) * 0.04
        y0 -= margin; y1 += margin
        let xt = Self.ticks(x0, x1), yt = Self.ticks(y0, y1)
        x0 = min(x0, xt.first ?? x0); x1 = max(x1, xt.last ?? x1)
        y0 = min(y0, yt.first ?? y0); y1 = max(y1, yt.last ?? y1)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(left + plotW / 2))" y="22" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

            """
        for t in yt {
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Self.label(t))</text>\n"
        }
        for t in xt {
            out += "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH + 5))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Self.label(t))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18,\(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>\n"
        var legend: [(String, String, Bool)] = []
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            if let band = s.band, band.count > 1 {
                let upper = band.map { "\(f(px($0.x))),\(f(py($0.high)))" }
                let lower = band.reversed().map { "\(f(px($0.x))),\(f(py($0.low)))" }
                out += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
            }
            if !s.markersOnly, s.points.count > 1 {
                let path = s.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"/>\n"
            }
            for p in s.points {
                out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(s.markersOnly ? 2.5 : 2.2)\" fill=\"\(color)\"/>\n"
            }
            legend.append((s.name, color, s.band != nil))
        }
        if let reference {
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(reference.y)))\" y2=\"\(f(py(reference.y)))\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n"
            legend.append((reference.name, "#555", false))
        }
        for (i, item) in legend.enumerated() {
            let y = top + 10 + Double(i) * 18
            out += "<line x1=\"\(f(left + plotW + 12))\" x2=\"\(f(left + plotW + 32))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"\(item.1)\" stroke-width=\"2\"\(item.0 == reference?.name ? " stroke-dasharray=\"6,4\"" : "")/>\n"
            out += "<text x=\"\(f(left + plotW + 38))\" y=\"\(f(y + 4))\">\(Self.escape(item.0))\(item.2 ? " (±1 sd)" : "")</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// Writes the SVG atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(Data(svg.utf8), to: path)
    }
}

/// Mean and standard deviation of values grouped by x, for plotting trials as a band.
package func meanAndDeviation(_ points: [(x: Double, y: Double)]) -> [(x: Double, mean: Double, low: Double, high: Double)] {
    Dictionary(grouping: points.filter { $0.y.isFinite }, by: \.x).sorted { $0.key < $1.key }.map { x, group in
        let ys = group.map(\.y)
        let mean = ys.reduce(0, +) / Double(ys.count)
        let variance = ys.count > 1 ? ys.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(ys.count - 1) : 0
        let sd = variance.squareRoot()
        return (x, mean, mean - sd, mean + sd)
    }
}
