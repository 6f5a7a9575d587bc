import DepthLensModel

/// Keys that may appear in a `state_dict` without being parameters of the function the
/// network computes; loading accepts and ignores them. (The keys a network does read come
/// from its ``ModelDescription``.)
func isIgnorableTensorKey(_ key: String) -> Bool {
    key.hasSuffix(".num_batches_tracked") || key == "num_batches_tracked"
}
