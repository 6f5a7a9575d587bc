// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "DepthLens",
    products: [
        .library(name: "DepthLens", targets: ["DepthLens"]),
        .executable(name: "depthlens", targets: ["depthlens"]),
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
        .target(
            name: "DepthLens",
            dependencies: ["CHDF5", "CZlib"],
            path: "Sources/DepthLens"
        ),
        .executableTarget(
            name: "depthlens",
            dependencies: [
                "DepthLens",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/depthlens"
        ),
        .testTarget(
            name: "DepthLensTests",
            dependencies: ["DepthLens"],
            path: "Tests/DepthLensTests"
        ),
        .testTarget(
            name: "depthlensCLITests",
            dependencies: ["depthlens"],
            path: "Tests/depthlensCLITests"
        ),
    ]
)
