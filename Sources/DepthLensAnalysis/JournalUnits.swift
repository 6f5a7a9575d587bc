import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// The units one evaluation saves in the context's ``ProgressJournal`` under one section:
/// each is replayed when the journal holds it, and otherwise computed (after honouring a
/// stop request) and saved. Every journalled analysis goes through this, so replay,
/// stopping and saving work alike for sub-networks and ensembles.
struct JournalUnits {
    let journal: ProgressJournal?
    let section: String
    let stopRequest: StopRequest?

    /// - Parameter section: names what is evaluated; computed only when there is a journal.
    init(_ context: AnalysisContext, section: () -> String) {
        journal = context.journal
        self.section = context.journal == nil ? "" : section()
        stopRequest = context.stopRequest
    }

    /// Unit `index`: its saved payload decoded, or `compute`'s value, saved. A payload that
    /// does not decode is computed again. Without a journal, `compute` runs unconditionally
    /// and no stop request is polled (a stop would keep nothing).
    func unit<Value>(_ index: Int, decode: ([String]) -> Value?, encode: (Value) -> [String],
                     compute: () throws -> Value) throws -> Value {
        guard let journal else { return try compute() }
        if let payload = journal.finishedUnit(section: section, unit: index), let value = decode(payload) { return value }
        try stopRequest?.check()
        let value = try compute()
        try journal.record(section: section, unit: index, payload: encode(value))
        return value
    }
}
