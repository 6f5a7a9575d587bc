extension DataSetRequest {
    /// The files this request reads: the images file (each CIFAR batch file) and, for IDX,
    /// the labels file (given, or found beside the images). What a resumed run fingerprints
    /// (``ContentFingerprint``) to tell whether its data changed.
    public func files() throws -> [String] {
        switch try Self.format(of: path) {
        case .hdf5: return [path]
        case .cifar: return path.split(separator: ",").map(String.init)
        case .idx: return [path] + (try idxLabels().map { [$0] } ?? [])
        }
    }
}
