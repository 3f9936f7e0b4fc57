// swift-tools-version:6.0
import PackageDescription

let nio = "https://github.com/apple/swift-nio.git"

let package = Package(
    name: "ionlab",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ionlab", targets: ["ionlab"]),
        .executable(name: "ionlab-agent", targets: ["ionlab-agent"]),
        .executable(name: "ionlab-bench", targets: ["ionlab-bench"]),
        .executable(name: "ionlab-fuzz", targets: ["ionlab-fuzz"]),
    ],
    dependencies: [
        .package(url: nio, from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    ],
    targets: [
        /// The libvirt C API (libvirt-dev), found with pkg-config.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        /// A small Swift API over libvirt: connection, domain, pool, volume, stream, typed errors.
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        /// Provisioning: backend discovery, domain and volume XML, the cloud-init seed, VM lifecycle.
        .target(name: "IonLabProvision", dependencies: [
            "Libvirt", "IonLabConfig",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        /// POSIX helpers Swift cannot express directly (posix_spawn with a process group, wait status).
        .target(name: "CIonLabSys"),
        /// The wire protocol both sides share: frames, messages, multiplexed flow-controlled streams.
        .target(name: "IonLabWire", dependencies: [
            "IonLabConfig",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        /// YAML configuration with strict decoding and file:line errors; agent and controller config.
        .target(name: "IonLabConfig", dependencies: [
            .product(name: "Yams", package: "Yams"),
        ]),
        /// CA, certificates, CSRs, enrollment tokens, SPKI pins and TLS configurations.
        .target(name: "IonLabPKI", dependencies: [
            "IonLabConfig",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),
        /// Streaming of files and directory trees over a wire stream, sha256-verified.
        .target(name: "IonLabTransfer", dependencies: [
            "IonLabWire",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        /// The in-VM agent: connection loop, enrollment, operations.
        .target(name: "IonLabAgent", dependencies: [
            "IonLabWire", "IonLabPKI", "IonLabConfig", "IonLabTransfer", "CIonLabSys",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The controller: agent listener, sessions, store, events, admin API.
        .target(name: "IonLabController", dependencies: [
            "IonLabWire", "IonLabPKI", "IonLabConfig", "IonLabTransfer", "IonLabProvision", "Libvirt",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "ionlab", dependencies: [
            "IonLabController", "IonLabProvision", "IonLabTransfer", "IonLabConfig", "IonLabWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .executableTarget(name: "ionlab-agent", dependencies: [
            "IonLabAgent",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        /// Fuzz targets for the frame decoder and multiplexer, the message decoder and the tree writer, with
        /// their seed corpus; `ionlab-fuzz` runs them under libFuzzer (scripts/fuzz.sh) or replays inputs.
        .target(name: "IonLabFuzz", dependencies: [
            "IonLabWire", "IonLabTransfer",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "ionlab-fuzz", dependencies: ["IonLabFuzz"]),
        .executableTarget(name: "ionlab-bench", dependencies: [
            "IonLabController", "IonLabAgent", "IonLabWire", "IonLabPKI", "IonLabConfig", "CIonLabSys",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
        ]),
        .testTarget(name: "IonLabWireTests", dependencies: [
            "IonLabWire",
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabConfigTests", dependencies: ["IonLabConfig"]),
        .testTarget(name: "IonLabTransferTests", dependencies: [
            "IonLabTransfer", "IonLabWire", "IonLabFuzz",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabProvisionTests", dependencies: ["IonLabProvision", "Libvirt", "IonLabConfig"]),
        .testTarget(name: "IonLabPKITests", dependencies: [
            "IonLabPKI", "IonLabConfig",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .testTarget(name: "IonLabIntegrationTests", dependencies: [
            "IonLabController", "IonLabAgent", "IonLabPKI", "IonLabWire", "IonLabConfig", "ionlab", "ionlab-agent",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
