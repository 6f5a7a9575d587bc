import ArgumentParser
import DepthLens

/// `--recalibrate N` for analyses of fixed sub-networks (lesion, sample, depth): dropping
/// blocks shifts the statistics later batch norms see, so each sub-network may first
/// have them re-estimated on N training images.
struct RecalibrationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Re-estimate each sub-network's batch-norm statistics on this many training images first.", valueName: "n"))
    var recalibrate: Int?

    @Option(help: ArgumentHelp("Training images for --recalibrate (default: the checkpoint's data set's training split, when installed).", valueName: "path"))
    var recalibrationData: String?

    func validate() throws {
        if let recalibrate, recalibrate < 2 {
            throw ValidationError("--recalibrate needs at least 2 images (a batch of one has no variance), found \(recalibrate).")
        }
        if recalibrationData != nil, recalibrate == nil {
            throw ValidationError("--recalibration-data needs --recalibrate N.")
        }
    }

    /// For a progress journal's configuration: the images used, or "none".
    func description(_ images: (any ImageSource)?) -> String {
        images.map { "\($0.count) images of \($0.name)" } ?? "none"
    }

    /// The recalibration images, or nil when `--recalibrate` was not given, normalised as
    /// the data are (`normalization`: `--mean/--std`, nil for the checkpoint's).
    func source(for checkpoint: Checkpoint, normalization: InputNormalization?) throws -> (any ImageSource)? {
        guard var request = try request(for: checkpoint) else { return nil }
        request.limit = recalibrate
        request.normalization = normalization
        return try request.open(for: checkpoint)
    }

    /// The files the recalibration images come from (none without `--recalibrate`), for
    /// the progress journal's fingerprints.
    func files(for checkpoint: Checkpoint) throws -> [String] {
        try request(for: checkpoint)?.files() ?? []
    }

    private func request(for checkpoint: Checkpoint) throws -> DataSetRequest? {
        guard recalibrate != nil else { return nil }
        guard checkpoint.architecture.modelDescription.hasBatchNorm else {
            throw CLIError("--recalibrate: \(RecalibrationError(checkpoint: checkpoint))")
        }
        guard let request = recalibrationData.map(DataSetRequest.init(path:)) ?? InstalledDataSets.trainingSet(for: checkpoint) else {
            throw CLIError("\(checkpoint.path) records no data set whose training split DepthLens can find; give --recalibration-data")
        }
        return request
    }
}
