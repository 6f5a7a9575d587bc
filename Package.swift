// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "DepthLens",
    products: [
        // The whole library: checkpoints, evaluation, analyses, output (docs/architecture.md).
        .library(name: "DepthLens", targets: ["DepthLens"]),
        // What a schedule or metric plugin depends on, and nothing more.
        .library(name: "DepthLensPluginAPI", targets: ["DepthLensPluginAPI"]),
        // Built-in schedules and metrics.
        .library(name: "DepthLensBuiltins", targets: ["DepthLensSchedules", "DepthLensMetrics"]),
        // The command line as a library: a package with its own plugins builds its own
        // `depthlens`-style executable by calling `DepthLensMain.run(registering:)`.
        .library(name: "DepthLensCLI", targets: ["DepthLensCLI"]),
        .executable(name: "depthlens", targets: ["depthlens"]),
        // A libFuzzer target over the checkpoint loader and data readers; a replayer of
        // its inputs when built without -sanitize=fuzzer (docs/reliability.md).
        .executable(name: "depthlens-fuzz", targets: ["DepthLensFuzz"]),
        // For run-time plugins (`--plugin lib.so`): the C ABI and a Swift helper over it.
        // A plugin library links this, never the DepthLens library itself.
        .library(name: "DepthLensPluginKit", targets: ["DepthLensPluginKit"]),
        // `swift package scaffold-plugin` in a package that depends on DepthLens.
        .plugin(name: "ScaffoldPlugin", targets: ["ScaffoldPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libhdf5 from Debian's libhdf5-dev, with a shim for the macros Swift cannot import.
        .systemLibrary(
            name: "CHDF5",
            path: "Sources/CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // zlib from Debian's zlib1g-dev, for gzipped IDX files.
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // oneDNN from Debian's libdnnl-dev (no pkg-config file there): the fast engine's
        // convolutions.
        .systemLibrary(
            name: "CDNNL",
            path: "Sources/CDNNL",
            providers: [.apt(["libdnnl-dev"])]
        ),
        // The C ABI of run-time plugins (a header shipped in the package).
        .target(
            name: "CDepthLensPlugin",
            path: "Sources/CDepthLensPlugin"
        ),
        .target(
            name: "DepthLensPluginKit",
            dependencies: ["CDepthLensPlugin"],
            path: "Sources/DepthLensPluginKit"
        ),
        // The plugin API: schedules, metrics, their registry and the blocks they see. No
        // system library: a plugin author needs neither libhdf5-dev nor libdnnl-dev.
        .target(
            name: "DepthLensPluginAPI",
            path: "Sources/DepthLensPluginAPI"
        ),
        // Loading run-time plugins (`--plugin lib.so`) through the C ABI.
        .target(
            name: "DepthLensPluginLoading",
            dependencies: ["DepthLensPluginAPI", "CDepthLensPlugin"],
            path: "Sources/DepthLensPluginLoading"
        ),
        // What a network is: architectures, presets, the model description of each family.
        .target(
            name: "DepthLensModel",
            dependencies: ["DepthLensPluginAPI"],
            path: "Sources/DepthLensModel"
        ),
        // Files: HDF5 (checkpoints, image sets), IDX and CIFAR binaries, checkpoint loading.
        .target(
            name: "DepthLensFormats",
            dependencies: ["DepthLensModel", "CHDF5", "CZlib"],
            path: "Sources/DepthLensFormats"
        ),
        // Evaluation: networks, gates, the reference and fused (oneDNN) engines.
        .target(
            name: "DepthLensEngine",
            dependencies: ["DepthLensFormats", "DepthLensModel", "CDNNL"],
            path: "Sources/DepthLensEngine"
        ),
        // The analyses, their journal and typed results.
        .target(
            name: "DepthLensAnalysis",
            dependencies: ["DepthLensEngine", "DepthLensFormats", "DepthLensModel", "DepthLensPluginAPI"],
            path: "Sources/DepthLensAnalysis"
        ),
        // Results as files: CSV, SVG plots, atomic writes.
        .target(
            name: "DepthLensOutput",
            dependencies: ["DepthLensAnalysis"],
            path: "Sources/DepthLensOutput"
        ),
        // The whole library behind one import.
        .target(
            name: "DepthLens",
            dependencies: ["DepthLensPluginAPI", "DepthLensPluginLoading", "DepthLensModel", "DepthLensFormats",
                           "DepthLensEngine", "DepthLensAnalysis", "DepthLensOutput"],
            path: "Sources/DepthLens"
        ),
        // Built-in plugins: they use only the plugin API, as a user's plugin would.
        .target(
            name: "DepthLensSchedules",
            dependencies: ["DepthLensPluginAPI"],
            path: "Plugins/Schedules"
        ),
        .target(
            name: "DepthLensMetrics",
            dependencies: ["DepthLensPluginAPI"],
            path: "Plugins/Metrics"
        ),
        .target(
            name: "DepthLensCLI",
            dependencies: [
                "DepthLens", "DepthLensSchedules", "DepthLensMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/DepthLensCLI"
        ),
        .executableTarget(
            name: "depthlens",
            dependencies: ["DepthLensCLI"],
            path: "Sources/depthlens"
        ),
        .executableTarget(
            name: "DepthLensFuzz",
            dependencies: ["DepthLens", "DepthLensSchedules"],
            path: "Sources/DepthLensFuzz"
        ),
        // `swift package scaffold-plugin --kind schedule|metric --name NAME`: writes a
        // working schedule or metric and its test, to start a plugin from.
        .plugin(
            name: "ScaffoldPlugin",
            capability: .command(
                intent: .custom(verb: "scaffold-plugin", description: "Write a new survival schedule or metric plugin and its test from a template"),
                permissions: [.writeToPackageDirectory(reason: "writes the new plugin's source and test files into the package")]
            ),
            path: "Plugins/ScaffoldPlugin"
        ),
        .testTarget(
            name: "DepthLensTests",
            dependencies: ["DepthLens"],
            path: "Tests/DepthLensTests"
        ),
        .testTarget(
            name: "DepthLensSchedulesTests",
            dependencies: ["DepthLens", "DepthLensSchedules"],
            path: "Tests/DepthLensSchedulesTests"
        ),
        .testTarget(
            name: "DepthLensMetricsTests",
            dependencies: ["DepthLens", "DepthLensMetrics"],
            path: "Tests/DepthLensMetricsTests"
        ),
        .testTarget(
            name: "DepthLensAnalysisTests",
            dependencies: ["DepthLens", "DepthLensMetrics"],
            path: "Tests/DepthLensAnalysisTests"
        ),
        .testTarget(
            name: "depthlensCLITests",
            dependencies: [
                "depthlens", "DepthLens", "DepthLensCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/depthlensCLITests"
        ),
    ]
)
