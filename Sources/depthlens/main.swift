import DepthLensCLI

// The stock tool: built-in schedules and metrics, plus any --plugin libraries.
DepthLensMain.run()
