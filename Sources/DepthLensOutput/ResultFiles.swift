import DepthLensAnalysis
import Foundation

/// A ``ResultTable`` as files: tidy `results.csv` and its `masks.csv` (columns in
/// docs/results-csv.md). Here rather than beside the table so that analyses do not
/// depend on output and output (plots among it) depends on analyses only.
extension ResultTable {
    /// Every column, in order; ``optionalColumns`` among them appear only when a row fills them.
    public static let header = ["analysis", "checkpoint", "schedule", "experiment", "configuration", "member", "block", "k",
                                "metric", "value", "mask", "seed", "trial", "ci_low", "ci_high", "method", "n", "versus"]

    /// Columns left out of a file when every row leaves them empty (such as `mask` in
    /// `paths`, `block` outside lesions): no column of a file is all empty.
    public static let optionalColumns: Set<String> = ["member", "block", "k", "mask", "trial", "ci_low", "ci_high", "method", "n", "versus"]

    /// The results as CSV text (numbers in shortest round-trip form; NaN as `NaN`).
    public var resultsCSV: String { Self.resultsCSV(of: [self]) }

    /// The rows of several tables (such as one per checkpoint) in one CSV; each row names
    /// its table's checkpoint, schedule and seed.
    public static func resultsCSV(of tables: [ResultTable]) -> String {
        let records = tables.flatMap { table in
            table.rows.map { row -> [String] in
                [row.analysis, table.checkpoint, table.schedule, row.experiment.kind, row.configuration, row.member?.name ?? "",
                 row.experiment.block.map(String.init) ?? "", row.k.map(Self.format) ?? "",
                 row.metric, Self.format(row.value), row.mask, "\(table.seed)", row.experiment.trial.map(String.init) ?? "",
                 row.interval?.low.map(Self.format) ?? "", row.interval?.high.map(Self.format) ?? "",
                 row.interval?.method ?? "", row.interval.map { "\($0.n)" } ?? "", row.versus ?? ""]
            }
        }
        let kept = Self.header.indices.filter { c in
            !Self.optionalColumns.contains(Self.header[c]) || records.contains { !$0[c].isEmpty }
        }
        var table = CSVTable(header: kept.map { Self.header[$0] })
        for record in records { table.append(kept.map { record[$0] }) }
        return table.text
    }

    /// The masks as CSV text.
    public var masksCSV: String {
        // A `unit` column only where blocks hold several branches (docs/results-csv.md).
        var table = CSVTable(header: ["mask", "order", "gates"] + (gateUnit.map { _ in ["unit"] } ?? []))
        for mask in masks {
            table.append([mask.key, mask.order.map { $0.map(String.init).joined(separator: " ") } ?? "",
                          mask.gates.map { "\($0)" }.joined(separator: " ")] + (gateUnit.map { [$0] } ?? []))
        }
        return table.text
    }

    package static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Writes `results.csv` and `masks.csv` (when there are masks) into `folder`, atomically.
    public func write(to folder: String, prefix: String = "") throws {
        try AtomicFile.write(Data(resultsCSV.utf8), to: "\(folder)/\(prefix)results.csv")
        if !masks.isEmpty { try AtomicFile.write(Data(masksCSV.utf8), to: "\(folder)/\(prefix)masks.csv") }
    }
}
