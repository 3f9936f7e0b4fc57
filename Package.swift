// swift-tools-version:6.0
import PackageDescription

let nio = "https://github.com/apple/swift-nio.git"

let package = Package(
    name: "ionlab",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ionlab", targets: ["ionlab"]),
        .executable(name: "ionlab-controller", targets: ["ionlab-controller"]),
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
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        /// The libvirt C API (libvirt-dev), found with pkg-config.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        /// A small Swift API over libvirt: connection, domain, pool, volume, stream, typed errors.
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        /// Provisioning: backend discovery, domain and volume XML, the cloud-init seed, VM lifecycle, snapshots
        /// and screenshots.
        .target(name: "IonLabProvision", dependencies: [
            "Libvirt", "IonLabConfig", "IonLabControllerConfig", "IonLabPictures",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        /// Pictures of screens as values: 8-bit RGB, PNG in and out through libpng within stated limits, QEMU's
        /// PPM, comparisons within a tolerance, and the copy an OCR engine reads best. No I/O.
        .target(name: "IonLabPictures", dependencies: ["CIonLabPNG"]),
        /// The host's picture tools, run without a shell and bounded in time and output: tesseract reads a
        /// screen's text, apngasm makes a session's frames an animated PNG.
        .target(name: "IonLabPictureTools", dependencies: ["IonLabPictures"]),
        /// The client side of RFB (VNC) as a pure state machine: handshake, VNC Authentication, framebuffer
        /// updates, key events.
        .target(name: "IonLabRFB", dependencies: ["CNettle", "IonLabPictures"]),
        /// Nettle (nettle-dev), for the DES that RFB's VNC Authentication needs.
        .systemLibrary(name: "CNettle", pkgConfig: "nettle", providers: [.apt(["nettle-dev"])]),
        /// PNG encoding with libpng (libpng-dev), in C because libpng reports errors by longjmp.
        .target(name: "CIonLabPNG", linkerSettings: [.linkedLibrary("png")]),
        /// POSIX helpers Swift cannot express directly (posix_spawn with a process group, wait status).
        .target(name: "CIonLabSys"),
        /// The wire: frames and their codec, multiplexed flow-controlled streams, JSON messages of any
        /// vocabulary (`WireMessage`), typed by the role of each end (`WireRole`). No domain types.
        .target(name: "IonLabWire", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        /// The agent channel's messages: handshake, enrollment, heartbeat and job reports on stream 0 (one
        /// type per direction), exec and tree transfers on request streams, and the checks of their fields.
        .target(name: "IonLabAgentProtocol", dependencies: [
            "IonLabWire", "IonLabConfig",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        /// The admin API between the CLI and the controller: requests, replies, typed events and records,
        /// and the typed client the CLI uses.
        .target(name: "IonLabAdminAPI", dependencies: [
            "IonLabWire", "IonLabAgentProtocol", "IonLabSpec", "IonLabConfig",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        /// The values configs and messages share (endpoints, names, pins, checks), located config errors, and
        /// the agent's config (JSON). FoundationEssentials only: the agent links it.
        .target(name: "IonLabConfig"),
        /// Strict YAML decoding with file:line errors, for the controller's configs and fleet specs.
        .target(name: "IonLabYAML", dependencies: [
            "IonLabConfig",
            .product(name: "Yams", package: "Yams"),
        ]),
        /// The controller's config: where it listens, its libvirt backends, its image catalog.
        .target(name: "IonLabControllerConfig", dependencies: ["IonLabConfig", "IonLabYAML"]),
        /// The fleet and workflow model: fleet specs, VMs, steps, operations and probes, recipes.
        .target(name: "IonLabSpec", dependencies: ["IonLabConfig", "IonLabYAML"]),
        /// CA, certificates, CSRs, enrollment tokens, SPKI pins and TLS configurations.
        .target(name: "IonLabPKI", dependencies: [
            "IonLabConfig",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),
        /// Streams over a wire stream: files and directory trees, sha256-verified, and the TCP connections of
        /// port forwards.
        .target(name: "IonLabTransfer", dependencies: [
            "IonLabWire", "IonLabAgentProtocol", "IonLabConfig",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        /// The in-VM agent: connection loop, enrollment, operations.
        .target(name: "IonLabAgent", dependencies: [
            "IonLabWire", "IonLabAgentProtocol", "IonLabPKI", "IonLabConfig", "IonLabTransfer", "CIonLabSys",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The controller's HTTP side (`serve --http`), over Hummingbird: the dashboard page (its files compiled
        /// in), its JSON and live events, who may read and change what, and Prometheus metrics at /metrics.
        .target(name: "IonLabDashboard", dependencies: [
            "IonLabAdminAPI", "IonLabAgentProtocol", "IonLabConfig",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], resources: [
            .embedInCode("Resources/dashboard/index.html"), .embedInCode("Resources/dashboard/login.html"),
            .embedInCode("Resources/dashboard/dashboard.js"), .embedInCode("Resources/dashboard/dashboard.css"),
        ]),
        /// The controller: agent listener, sessions, store, events, admin API, and the guest-side scripts of
        /// its built-in operations (Resources/guest, bundled).
        .target(name: "IonLabController", dependencies: [
            "IonLabWire", "IonLabAgentProtocol", "IonLabAdminAPI", "IonLabSpec", "IonLabPKI", "IonLabConfig", "IonLabControllerConfig",
            "IonLabTransfer", "IonLabProvision", "Libvirt", "IonLabRFB", "IonLabDashboard", "IonLabPictures", "IonLabPictureTools",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ], resources: [.copy("Resources/guest")]),
        /// What both executables' commands share: the global options, one-line errors, the terminal (escaped), tables.
        .target(name: "IonLabCommandLine", dependencies: [
            "IonLabAdminAPI", "IonLabControllerConfig", "IonLabWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        /// The command line: a client of the controller, with neither libvirt nor SQLite in it.
        .executableTarget(name: "ionlab", dependencies: [
            "IonLabCommandLine", "IonLabAdminAPI", "IonLabAgentProtocol", "IonLabTransfer", "IonLabConfig",
            "IonLabControllerConfig", "IonLabSpec", "IonLabWire", "CIonLabSys",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        /// The controller's executable: `init`, `serve` and `backends`, which `ionlab` hands over to.
        .executableTarget(name: "ionlab-controller", dependencies: [
            "IonLabController", "IonLabCommandLine", "IonLabAdminAPI", "IonLabProvision", "IonLabControllerConfig", "IonLabConfig", "IonLabWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "ionlab-agent", dependencies: [
            "IonLabAgent", "IonLabConfig",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        /// Fuzz targets for the frame decoder and multiplexer, the message decoder and the tree writer, with
        /// their seed corpus; `ionlab-fuzz` runs them under libFuzzer (scripts/fuzz.sh) or replays inputs.
        .target(name: "IonLabFuzz", dependencies: [
            "IonLabWire", "IonLabAgentProtocol", "IonLabTransfer",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "ionlab-fuzz", dependencies: ["IonLabFuzz"]),
        .executableTarget(name: "ionlab-bench", dependencies: [
            "IonLabController", "IonLabAgent", "IonLabAdminAPI", "IonLabAgentProtocol", "IonLabWire", "IonLabPKI", "IonLabConfig",
            "IonLabControllerConfig", "CIonLabSys",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
        ]),
        .testTarget(name: "IonLabWireTests", dependencies: [
            "IonLabWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabAgentProtocolTests", dependencies: [
            "IonLabAgentProtocol", "IonLabWire",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabRFBTests", dependencies: ["IonLabRFB", "IonLabPictures"]),
        .testTarget(name: "IonLabPicturesTests", dependencies: ["IonLabPictures"]),
        .testTarget(name: "IonLabPictureToolsTests", dependencies: ["IonLabPictureTools", "IonLabPictures"]),
        .testTarget(name: "IonLabConfigTests", dependencies: ["IonLabConfig", "IonLabYAML", "IonLabControllerConfig", "IonLabSpec"]),
        .testTarget(name: "IonLabTransferTests", dependencies: [
            "IonLabTransfer", "IonLabWire", "IonLabAgentProtocol", "IonLabFuzz",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabProvisionTests", dependencies: ["IonLabProvision", "Libvirt", "IonLabConfig", "IonLabControllerConfig", "IonLabPictures"]),
        .testTarget(name: "IonLabPKITests", dependencies: [
            "IonLabPKI", "IonLabConfig",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        /// The controller's services (enrollment, the workflow engine, fleets) against fakes, in one process.
        .testTarget(name: "IonLabControllerTests", dependencies: [
            "IonLabController", "IonLabAdminAPI", "IonLabAgentProtocol", "IonLabConfig", "IonLabYAML", "IonLabControllerConfig", "IonLabSpec", "IonLabPKI",
            "IonLabProvision", "IonLabTransfer", "IonLabDashboard",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "IonLabIntegrationTests", dependencies: [
            "IonLabController", "IonLabAgent", "IonLabAdminAPI", "IonLabAgentProtocol", "IonLabPKI", "IonLabWire", "IonLabConfig",
            "IonLabSpec", "CIonLabSys", "IonLabDashboard", "ionlab", "ionlab-controller", "ionlab-agent",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
        ], exclude: ["Helpers"]),
    ],
    swiftLanguageModes: [.v6]
)
