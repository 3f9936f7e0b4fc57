import Foundation
import IonLabConfig
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
}
