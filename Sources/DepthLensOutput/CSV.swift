import DepthLensAnalysis

/// RFC 4180 CSV text: comma-separated, fields quoted only when they must be, `\n` line ends.
package struct CSVTable: Sendable {
    public var header: [String]
    public private(set) var rows: [[String]] = []

    public init(header: [String]) { self.header = header }

    /// Appends a row; it must have one field per column.
    public mutating func append(_ row: [String]) {
        precondition(row.count == header.count, "CSV row has \(row.count) fields for \(header.count) columns")
        rows.append(row)
    }

    /// The whole table as text, header first.
    public var text: String {
        var out = ""
        for row in [header] + rows {
            out += row.map(Self.escape).joined(separator: ",")
            out += "\n"
        }
        return out
    }

    static func escape(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Reads CSV text in the form ``text`` writes (RFC 4180: a header line, fields quoted
    /// when they hold a comma, quote or line end, quotes doubled). Nil when a row's field
    /// count differs from the header's or a quote is left open.
    public init?(parsing text: String) {
        var records: [[String]] = [], record: [String] = [], field = "", quoted = false, wasQuoted = false
        var characters = text.makeIterator()
        var pending = characters.next()
        while let c = pending {
            pending = characters.next()
            if quoted {
                if c == "\"" {
                    if pending == "\"" { field.append(c); pending = characters.next() } else { quoted = false }
                } else {
                    field.append(c)
                }
            } else if c == "\"" && field.isEmpty && !wasQuoted {
                quoted = true
                wasQuoted = true
            } else if c == "," || c == "\n" {
                record.append(field)
                field = ""
                wasQuoted = false
                if c == "\n" { records.append(record); record = [] }
            } else {
                field.append(c)
            }
        }
        guard !quoted, field.isEmpty, record.isEmpty, let header = records.first else { return nil }
        self.init(header: header)
        for row in records.dropFirst() {
            guard row.count == header.count else { return nil }
            rows.append(row)
        }
    }

    /// The rows as dictionaries from column name to field.
    public var records: [[String: String]] {
        rows.map { Dictionary(uniqueKeysWithValues: zip(header, $0)) }
    }

    /// Formats a float so it reads back to the same value (shortest round-trip form).
    public static func number(_ value: Float) -> String { "\(value)" }
}
