import DepthLensAnalysis
import Foundation

/// A line chart drawn as standalone SVG: a title and a subtitle (checkpoint, images),
/// axes with round-number ticks, axis labels, markers, shaded bands (95% intervals), an
/// optional horizontal reference line and vertical marks (such as downsampling blocks),
/// and a legend below the axes. Every text element lies inside the canvas: the canvas
/// grows to fit the legend, and widths are estimated generously
/// (``estimatedWidth(_:fontSize:)``). Opens in any browser.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Lower and upper edge of a band at each point, when there are trials.
        public var band: [(x: Double, low: Double, high: Double)]?
        /// What the band is, for the legend (such as "95% CI of the mean").
        public var bandName: String?
        /// Draw markers only (no connecting line).
        public var markersOnly: Bool
        /// Draw the line dashed.
        public var dashed: Bool
        /// Index into the palette; nil: the series' own position. Series about one
        /// checkpoint of a comparison share its colour.
        public var color: Int?

        public init(name: String, points: [(x: Double, y: Double)], band: [(x: Double, low: Double, high: Double)]? = nil,
                    bandName: String? = nil, markersOnly: Bool = false, dashed: Bool = false, color: Int? = nil) {
            self.name = name
            self.points = points.filter { $0.x.isFinite && $0.y.isFinite }
            self.band = band?.filter { $0.x.isFinite && $0.low.isFinite && $0.high.isFinite }
            self.bandName = bandName
            self.markersOnly = markersOnly
            self.dashed = dashed
            self.color = color
        }
    }

    /// How the y axis maps values.
    public enum YScale: String, Sendable, CaseIterable {
        /// Linear from the smallest to the largest value.
        case linear
        /// Logarithmic (base 10); values at or below zero are drawn at the axis' bottom.
        case log
        /// Linear, but the axis ends at Tukey's far-out fence of the values (Q3 + 3 IQR);
        /// points above it are drawn as triangles on the top edge, labelled with their value.
        case clip
    }

    public var title: String
    /// A second title line, such as the checkpoint and the number of images.
    public var subtitle: String?
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A horizontal reference line (such as the deterministic network's value).
    public var reference: (name: String, y: Double)?
    /// Vertical marks at these x values, named once in the legend (such as downsampling blocks).
    public var marks: (name: String, xs: [Double])?
    public var yScale: YScale = .linear
    public var width = 760.0
    public var height = 440.0

    public init(title: String, subtitle: String? = nil, xLabel: String, yLabel: String, series: [Series],
                reference: (name: String, y: Double)? = nil, marks: (name: String, xs: [Double])? = nil, yScale: YScale = .linear) {
        self.title = title
        self.subtitle = subtitle
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.reference = reference
        self.marks = marks
        self.yScale = yScale
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// A generous estimate of a text's width in sans-serif at `fontSize` (0.62 em a
    /// character, wider than the average Latin glyph of DejaVu Sans and Liberation Sans).
    public static func estimatedWidth(_ text: String, fontSize: Double) -> Double {
        Double(text.count) * fontSize * 0.62
    }

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

    /// Ticks 1, 2, 5 times powers of ten inside [low, high] (both positive).
    static func logTicks(_ low: Double, _ high: Double) -> [Double] {
        var ticks: [Double] = []
        var decade = pow(10, floor(log10(low)))
        while decade <= high * 1.000001 {
            for m in [1.0, 2, 5] where decade * m >= low * 0.999999 && decade * m <= high * 1.000001 { ticks.append(decade * m) }
            decade *= 10
        }
        return ticks.isEmpty ? [low, high] : ticks
    }

    static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        let text = String(format: "%.4g", v)
        return text
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Legend entries: name, colour, dashed, band.
    private var legendEntries: [(name: String, color: String, dashed: Bool, band: Bool)] {
        var legend: [(String, String, Bool, Bool)] = []
        for (i, s) in series.enumerated() {
            let color = Self.palette[(s.color ?? i) % Self.palette.count]
            legend.append((s.name, color, s.dashed, false))
            if let bandName = s.bandName, s.band != nil { legend.append((bandName, color, false, true)) }
        }
        if let reference { legend.append((reference.name, "#555", true, false)) }
        if let marks, !marks.xs.isEmpty { legend.append((marks.name, "#999", true, false)) }
        return legend
    }

    /// The legend laid out in rows inside [left, right]: each entry's x and row.
    private func legendLayout(left: Double, right: Double) -> [(x: Double, row: Int)] {
        var x = left, row = 0
        var out: [(Double, Int)] = []
        for entry in legendEntries {
            let w = 28 + Self.estimatedWidth(entry.name, fontSize: 12) + 18
            if x + w > right, x > left { x = left; row += 1 }
            out.append((x, row))
            x += w
        }
        return out
    }

    /// The SVG document.
    public var svg: String {
        let left = 72.0, right = 24.0, top = subtitle == nil ? 40.0 : 56.0
        let layout = legendLayout(left: left, right: width - right)
        let legendRows = (layout.map(\.row).max() ?? -1) + 1
        let bottom = 56.0 + Double(legendRows) * 18
        let height = max(self.height, top + 220 + bottom)
        let plotW = width - left - right, plotH = height - top - bottom
        var xs = series.flatMap { $0.points.map(\.x) + ($0.band?.map(\.x) ?? []) } + (marks?.xs ?? [])
        var ys = series.flatMap { $0.points.map(\.y) + ($0.band?.flatMap { [$0.low, $0.high] } ?? []) }
        if let reference { ys.append(reference.y) }
        if xs.isEmpty { xs = [0, 1] }
        if ys.isEmpty { ys = [0, 1] }
        var (x0, x1) = (xs.min()!, xs.max()!)
        if x0 == x1 { x0 -= 1; x1 += 1 }
        let xt = Self.ticks(x0, x1)
        x0 = min(x0, xt.first ?? x0); x1 = max(x1, xt.last ?? x1)
        // The y axis: its range, ticks and mapping under the scale.
        var clipAt: Double?
        let yt: [Double]
        let py: (Double) -> Double
        switch yScale {
        case .log:
            let positive = ys.filter { $0 > 0 }
            var lo = positive.min() ?? 0.01, hi = positive.max() ?? 1
            if lo == hi { lo /= 2; hi *= 2 }
            lo = pow(10, floor(log10(lo))); hi = pow(10, ceil(log10(hi)))
            yt = Self.logTicks(lo, hi)
            let (l0, l1) = (log10(lo), log10(hi))
            py = { y in top + (1 - (log10(max(y, lo)) - l0) / (l1 - l0)) * plotH }
        case .linear, .clip:
            var (y0, y1) = (ys.min()!, ys.max()!)
            if yScale == .clip {
                let sorted = series.flatMap { $0.points.map(\.y) }.sorted()
                if sorted.count >= 4 {
                    let q1 = LinePlot.quantile(sorted, 0.25), q3 = LinePlot.quantile(sorted, 0.75)
                    let fence = q3 + 3 * (q3 - q1)
                    if fence < y1, fence > y0 { y1 = fence; clipAt = fence }
                }
            }
            if y0 == y1 { y0 -= 0.5; y1 += 0.5 }
            // A margin, so a curve or reference line at an extreme never hides under the frame.
            let margin = (y1 - y0) * 0.04
            y0 -= margin; y1 += margin
            yt = Self.ticks(y0, y1)
            y0 = min(y0, yt.first ?? y0); y1 = max(y1, yt.last ?? y1)
            let (a, b) = (y0, y1)
            py = { y in top + (1 - (min(y, b) - a) / (b - a)) * plotH }
        }
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="15">\(Self.escape(Self.fit(title, width: width - 16, fontSize: 15)))</text>

            """
        if let subtitle {
            out += "<text x=\"\(f(width / 2))\" y=\"40\" text-anchor=\"middle\" font-size=\"12\" fill=\"#444\">\(Self.escape(Self.fit(subtitle, width: width - 16, fontSize: 12)))</text>\n"
        }
        for t in yt {
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#e5e5e5\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(Self.label(t))</text>\n"
        }
        for t in xt {
            out += "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH + 5))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(Self.label(t))</text>\n"
        }
        if let marks {
            for x in marks.xs {
                out += "<line x1=\"\(f(px(x)))\" x2=\"\(f(px(x)))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\" stroke=\"#999\" stroke-dasharray=\"2,3\"/>\n"
            }
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"black\"/>\n"
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 38))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        out += "<text transform=\"translate(18,\(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(Self.fit(yLabel, width: plotH, fontSize: 12)))</text>\n"
        for (i, s) in series.enumerated() {
            let color = Self.palette[(s.color ?? i) % Self.palette.count]
            if let band = s.band, band.count > 1 {
                let upper = band.map { "\(f(px($0.x))),\(f(py($0.high)))" }
                let lower = band.reversed().map { "\(f(px($0.x))),\(f(py($0.low)))" }
                out += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
            }
            if !s.markersOnly, s.points.count > 1 {
                let path = s.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"\(s.dashed ? " stroke-dasharray=\"5,3\"" : "")/>\n"
            }
            for p in s.points {
                if let clipAt, p.y > clipAt {
                    // Off the clipped axis: a triangle on the top edge and the value under it.
                    let x = px(p.x)
                    out += "<polygon points=\"\(f(x - 5)),\(f(top + 9)) \(f(x + 5)),\(f(top + 9)) \(f(x)),\(f(top + 1))\" fill=\"\(color)\"/>\n"
                    let text = Self.label((p.y * 1000).rounded() / 1000)
                    let half = Self.estimatedWidth(text, fontSize: 10) / 2
                    out += "<text x=\"\(f(min(max(x, left + half + 2), left + plotW - half - 2)))\" y=\"\(f(top + 21))\" text-anchor=\"middle\" font-size=\"10\">\(text)</text>\n"
                } else {
                    out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(s.markersOnly ? 2.5 : 2.2)\" fill=\"\(color)\"/>\n"
                }
            }
        }
        if let reference {
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(reference.y)))\" y2=\"\(f(py(reference.y)))\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n"
        }
        for (entry, place) in zip(legendEntries, layout) {
            let y = top + plotH + 58 + Double(place.row) * 18
            if entry.band {
                out += "<rect x=\"\(f(place.x))\" y=\"\(f(y - 6))\" width=\"20\" height=\"12\" fill=\"\(entry.color)\" fill-opacity=\"0.18\"/>\n"
            } else {
                out += "<line x1=\"\(f(place.x))\" x2=\"\(f(place.x + 20))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"\(entry.color)\" stroke-width=\"2\"\(entry.dashed ? " stroke-dasharray=\"6,4\"" : "")/>\n"
            }
            out += "<text x=\"\(f(place.x + 28))\" y=\"\(f(y + 4))\">\(Self.escape(entry.name))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// `text` shortened with an ellipsis to fit `width` at `fontSize`.
    static func fit(_ text: String, width: Double, fontSize: Double) -> String {
        guard estimatedWidth(text, fontSize: fontSize) > width else { return text }
        let keep = max(1, Int(width / (fontSize * 0.62)) - 1)
        return String(text.prefix(keep)) + "…"
    }

    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q
        let lower = Int(h.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (h - Double(lower)) * (sorted[upper] - sorted[lower])
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
