import Foundation
import IonLabConfig
import IonLabYAML
import IonLabControllerConfig
import Testing

@Suite struct BackendConfigTests {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theRepoCatalogIsTheDefaultOneAndParses() throws {
        let file = repo.appendingPathComponent("controller-config/images.yaml").path
        #expect(try String(contentsOfFile: file, encoding: .utf8) == ImageCatalog.defaultYAML)
        let catalog = try ImageCatalog.load(path: file)
        let test = try catalog.image(named: "bookworm-test")
        #expect(test.format == "raw")
        #expect(test.cmdline == "root=/dev/vda rw console=ttyS0")
        #expect(try catalog.image(named: "ubuntu-24.04").kernel == nil)
        #expect(throws: ValueError.self) { try catalog.image(named: "windows") }
    }

    @Test func theRepoControllerConfigParsesWithDefaultBackends() throws {
        let config = try ControllerConfig.load(path: repo.appendingPathComponent("controller-config/controller.yaml").path)
        #expect(config.backends == BackendConfig.defaultBackends)
        #expect(config.backends[0].uri == "qemu:///system")
        #expect(config.backends[0].network == .user)
        #expect(config.backends[0].controllerAddress == "10.0.2.2")
    }

    @Test func backendsRoundTripThroughTheWrittenYAML() throws {
        var config = ControllerConfig()
        config.backends = [BackendConfig(name: "a", uri: "qemu+ssh://root@host/system", network: .network("lab"), domainType: "kvm"),
                           BackendConfig(name: "t", uri: "test:///default", pool: "default-pool")]
        config.agentBundle = "/opt/ionlab/agent"
        #expect(try StrictYAML.decode(ControllerConfig.self, from: config.yaml(), file: "c.yaml") == config)
    }

    @Test(arguments: [
        ("backends:\n  - name: a\n    uri: nowhere\n", "c.yaml:3: backends[0].uri: expected a libvirt URI such as qemu:///system, found 'nowhere'"),
        ("backends:\n  - name: a\n    uri: \"test:///default\"\n    network: bridge\n", "c.yaml:4: backends[0].network: expected 'user' or 'network:NAME', found 'bridge'"),
        ("backends:\n  - name: a\n    uri: \"test:///default\"\n    pool_path: relative\n", "c.yaml:4: backends[0].pool_path: expected an absolute path, found 'relative'"),
        ("backends:\n  - name: a\n    uri: \"test:///default\"\n    colour: red\n", "c.yaml:4: backends[0].colour: unknown field"),
        ("backends: []\n", "c.yaml:1: backends: must not be empty"),
    ])
    func badBackendsAreLocated(yaml: String, expected: String) {
        #expect(rejection(ControllerConfig.self, yaml, file: "c.yaml") == expected)
    }

    @Test func badImagesAreLocated() {
        let yaml = "images:\n  - name: x\n    path: /a.raw\n    format: vmdk\n    os: debian\n"
        #expect(rejection(ImageCatalog.self, yaml, file: "images.yaml") == "images.yaml:4: images[0].format: expected raw or qcow2, found 'vmdk'")
    }

    /// An image that boots from its own disk (a cloud image) is placed with the domain type that boots Linux:
    /// the probe borrows a kernel the catalog has on this host (here KVM runs a boot sector, yet Linux hangs).
    @Test func domainTypesAreProbedWithAKernelEvenForImagesWithoutOne() throws {
        let kernel = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-vmlinuz-\(UUID().uuidString.prefix(8))").path
        FileManager.default.createFile(atPath: kernel, contents: Data("kernel".utf8))
        defer { try? FileManager.default.removeItem(atPath: kernel) }
        let catalog = ImageCatalog(images: [
            BaseImage(name: "cloud", path: "/images/cloud.qcow2", format: "qcow2", os: "debian"),
            BaseImage(name: "gone", path: "/images/gone.raw", format: "raw", kernel: "/nonexistent/vmlinuz", os: "debian"),
            BaseImage(name: "test", path: "/images/test.raw", format: "raw", kernel: kernel, os: "debian"),
        ])
        #expect(catalog.probeKernel(preferring: "cloud") == kernel)
        #expect(catalog.probeKernel() == kernel)
        #expect(catalog.probeKernel(preferring: "gone") == "/nonexistent/vmlinuz")  // an image's own, on its backend's host
        #expect(ImageCatalog(images: [BaseImage(name: "cloud", path: "/c.qcow2", format: "qcow2", os: "debian")]).probeKernel(preferring: "cloud") == nil)
    }
}
