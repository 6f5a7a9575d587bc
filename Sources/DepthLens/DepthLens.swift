// The umbrella module: `import DepthLens` brings the whole library, as before the split
// into targets (docs/architecture.md lists them and what each may import). A plugin
// needs only `DepthLensPluginAPI`.
@_exported import DepthLensAnalysis
@_exported import DepthLensEngine
@_exported import DepthLensFormats
@_exported import DepthLensModel
@_exported import DepthLensOutput
@_exported import DepthLensPluginAPI
@_exported import DepthLensPluginLoading
