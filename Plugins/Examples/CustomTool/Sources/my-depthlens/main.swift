import DepthLensCLI
import MyPlugins

// The stock command line (built-ins, --plugin libraries) plus this package's plugins.
DepthLensMain.run { registry in
    MyPlugins.register(in: registry)
}
