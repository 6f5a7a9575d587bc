/// RFC 4180 CSV text: comma-separated, fields quoted only when they must be, `\n` line ends.
public struct CSVTable: Sendable {
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

    /// Formats a float so it reads back to the same value (shortest round-trip form).
    public static func number(_ value: Float) -> String { "\(value)" }
}
