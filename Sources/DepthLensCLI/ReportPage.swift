import Foundation

/// `index.html` of a report: summary.md as HTML and every plot inline (the SVG itself, no
/// links), one self-contained file that reads offline.
enum ReportPage {
    static func html(title: String, summary: String, plots: [(file: String, svg: String)]) -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;max-width:820px;margin:2em auto;padding:0 1em;color:#222}
            table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
            th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}
            svg{max-width:100%;height:auto}</style></head><body>

            """
        out += markdown(summary)
        out += "<h2>Plots</h2>\n"
        for plot in plots {
            // The SVG's own XML declaration, if any, cannot stand inside HTML.
            let svg = plot.svg.hasPrefix("<?xml") ? String(plot.svg.drop { $0 != "\n" }) : plot.svg
            out += "<figure>\n\(svg)<figcaption>\(escape(plot.file))</figcaption></figure>\n"
        }
        return out + "</body></html>\n"
    }

    /// The Markdown summary.md uses: headings, bullet lists, pipe tables, paragraphs,
    /// `code` and nothing else.
    static func markdown(_ text: String) -> String {
        var out = "", list = false, table: [[String]] = []
        func inline(_ s: String) -> String {
            let parts = escape(s).split(separator: "`", omittingEmptySubsequences: false)
            return parts.enumerated().map { $0.offset % 2 == 1 ? "<code>\($0.element)</code>" : String($0.element) }.joined()
        }
        func flush() {
            if list { out += "</ul>\n"; list = false }
            if !table.isEmpty {
                out += "<table>\n"
                for (i, row) in table.enumerated() where !(i == 1 && row.allSatisfy { $0.allSatisfy { "-: ".contains($0) } }) {
                    let tag = i == 0 ? "th" : "td"
                    out += "<tr>" + row.map { "<\(tag)>\(inline($0))</\(tag)>" }.joined() + "</tr>\n"
                }
                out += "</table>\n"
                table = []
            }
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("|") {
                if list { out += "</ul>\n"; list = false }
                table.append(line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { $0.trimmingCharacters(in: .whitespaces) })
                continue
            }
            if !table.isEmpty { flush() }
            if let level = ["### ", "## ", "# "].firstIndex(where: { line.hasPrefix($0) }) {
                flush()
                let n = 3 - level, marker = ["### ", "## ", "# "][level]
                out += "<h\(n)>\(inline(String(line.dropFirst(marker.count))))</h\(n)>\n"
            } else if line.hasPrefix("- ") {
                if !list { out += "<ul>\n"; list = true }
                out += "<li>\(inline(String(line.dropFirst(2))))</li>\n"
            } else if line.isEmpty {
                flush()
            } else {
                flush()
                out += "<p>\(inline(line))</p>\n"
            }
        }
        flush()
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
