import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// The units one evaluation saves in the context's ``ProgressJournal`` under one section:
/// each is replayed when the journal holds it, and otherwise computed (after honouring a
/// stop request) and saved. Every journalled analysis goes through this, so replay,
/// stopping, saving and sharding (``WorkScope``) work alike for sub-networks and ensembles.
struct JournalUnits {
    let journal: ProgressJournal?
    let section: String
    let stopRequest: StopRequest?
    let scope: WorkScope

    /// - Parameter section: names what is evaluated; computed only when there is a journal
    ///   or a plan (it names the units of a plan and of a shard too).
    init(_ context: AnalysisContext, section: () -> String) {
        journal = context.journal
        scope = context.scope
        if case .everything = context.scope, context.journal == nil { self.section = "" } else { self.section = context.unitNamespace + section() }
        stopRequest = context.stopRequest
    }

    /// The journal's name of unit `index`.
    func key(_ index: Int) -> String { "\(section)/\(index)" }

    /// Whether this run computes unit `index` when the journal lacks it: every unit, or a
    /// shard's own; never in a plan or a replay.
    func owns(_ index: Int) -> Bool {
        switch scope {
        case .everything: true
        case .shard(let owned): owned.contains(key(index))
        case .planning, .replay: false
        }
    }

    var isReplay: Bool { if case .replay = scope { true } else { false } }

    /// The saved payload of unit `index`, or nil.
    func saved(_ index: Int) -> [String]? { journal?.finishedUnit(section: section, unit: index) }

    /// Polls the stop request before computing (only with a journal: a stop keeps nothing without one)
    /// and refuses to compute in a replay, where every unit must be saved already.
    func willCompute(_ indices: [Int]) throws {
        if case .replay = scope {
            throw JournalError(path: journal?.path ?? "(no journal)",
                               message: "lacks unit \(indices.first.map(key) ?? section) that a merge needs; merge every shard of the run")
        }
        if journal != nil { try stopRequest?.check() }
    }

    /// Unit `index`: its saved payload decoded, or `compute`'s value, saved; nil for a unit
    /// this run does not compute (another shard's). A payload that does not decode is
    /// computed again. Without a journal, `compute` runs unconditionally and no stop
    /// request is polled (a stop would keep nothing).
    func unit<Value>(_ index: Int, decode: ([String]) -> Value?, encode: (Value) -> [String],
                     compute: () throws -> Value) throws -> Value? {
        guard let journal else { return owns(index) ? try compute() : nil }
        if let payload = saved(index), let value = decode(payload) { return value }
        guard owns(index) || isReplay else { return nil }
        try willCompute([index])  // refuses in a replay
        let value = try compute()
        try journal.record(section: section, unit: index, payload: encode(value))
        return value
    }

    /// Saves several finished units in one write.
    func record(_ units: [(index: Int, payload: [String])]) throws {
        try journal?.record(section: section, units: units)
    }
}
