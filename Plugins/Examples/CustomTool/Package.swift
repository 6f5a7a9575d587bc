// swift-tools-version:6.0
// A package with its own schedules and metrics, linked into its own `depthlens`-style
// executable, `my-depthlens`: what a user writes in their own repository. There, the
// dependency reads `.package(url: "https://.../DepthLens", from: "0.1.0")`.
import PackageDescription

let package = Package(
    name: "CustomTool",
    products: [
        .executable(name: "my-depthlens", targets: ["my-depthlens"]),
    ],
    dependencies: [
        .package(name: "DepthLens", path: "../../.."),
    ],
    targets: [
        // The plugins: they need only the plugin API (no libhdf5, no oneDNN).
        .target(
            name: "MyPlugins",
            dependencies: [.product(name: "DepthLensPluginAPI", package: "DepthLens")]
        ),
        // The tool: the stock command line plus MyPlugins.
        .executableTarget(
            name: "my-depthlens",
            dependencies: ["MyPlugins", .product(name: "DepthLensCLI", package: "DepthLens")]
        ),
        .testTarget(
            name: "MyPluginsTests",
            dependencies: ["MyPlugins", .product(name: "DepthLensPluginAPI", package: "DepthLens"),
                           .product(name: "DepthLensBuiltins", package: "DepthLens")]
        ),
    ]
)
