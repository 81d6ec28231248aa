// swift-tools-version:5.9
// CarryKit: Carry's core for iOS and macOS apps. Before using this package, run
// `make xcframework` at the repository root (macOS with Xcode): it builds
// Carry.xcframework here and copies the generated Swift into Sources/CarryFFI.
import PackageDescription

let package = Package(
    name: "CarryKit",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "CarryKit", targets: ["CarryKit"]),
    ],
    targets: [
        // The static libcarry_ffi for device and simulator, with the C header and
        // the CarryFFIFFI module map the generated Swift imports.
        .binaryTarget(name: "CarryFFIFFI", path: "Carry.xcframework"),
        // The generated Swift (build/bindings/swift/CarryFFI.swift, copied here).
        .target(name: "CarryFFI", dependencies: ["CarryFFIFFI"], path: "Sources/CarryFFI"),
        // The hand-written layer apps import.
        .target(name: "CarryKit", dependencies: ["CarryFFI"], path: "Sources/CarryKit"),
    ]
)
