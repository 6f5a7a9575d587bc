// swift-tools-version:6.0
// A run-time plugin for DepthLens: a shared library loaded with `depthlens ... --plugin`.
import PackageDescription

let package = Package(
    name: "CosineSchedule",
    products: [
        .library(name: "CosineSchedule", type: .dynamic, targets: ["CosineSchedule"]),
    ],
    dependencies: [
        .package(name: "DepthLens", path: "../../.."),
    ],
    targets: [
        .target(name: "CosineSchedule", dependencies: [.product(name: "DepthLensPluginKit", package: "DepthLens")]),
    ]
)
