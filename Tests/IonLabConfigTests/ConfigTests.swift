import IonLabConfig
import IonLabControllerConfig
import Testing

@Suite struct ConfigTests {
    let pin = "sha256:" + String(repeating: "ab", count: 32)

    @Test func aCompleteAgentConfigRoundTripsThroughYAML() throws {
        let config = AgentConfig(name: "vm1", endpoints: [Endpoint(host: "10.0.2.2", port: 7443), Endpoint(host: "::1", port: 7443)],
                                 caPin: try CAPin(parsing: pin), token: "ionlab-secret", heartbeatSeconds: 5)
        let decoded = try StrictYAML.decode(AgentConfig.self, from: config.yaml(), file: "agent.yaml")
        #expect(decoded == config)
        #expect(config.yaml().contains("\"[::1]:7443\""))
    }

    @Test func defaultsFillOptionalSettings() throws {
        let config = try StrictYAML.decode(AgentConfig.self, from: "name: vm1\nendpoints: [\"h:1\"]\nca_pin: \(pin)\n", file: "a.yaml")
        #expect(config.token == nil)
        #expect(config.heartbeatSeconds == 10)
        #expect(config.reconnectMaxSeconds == 10)
    }

    @Test(arguments: [
        ("name: VM_1!\nendpoints: [\"h:1\"]\nca_pin: PIN\n", "a.yaml:1: name: 'VM_1!' is not a valid name"),
        ("name: vm1\nendpoints: []\nca_pin: PIN\n", "a.yaml:2: endpoints: must not be empty"),
        ("name: vm1\nendpoints:\n  - \"h:1\"\n  - \"h:99999\"\nca_pin: PIN\n", "a.yaml:4: endpoints[1]: expected HOST:PORT with a port in 1...65535"),
        ("name: vm1\nendpoints: \"h:1\"\nca_pin: PIN\n", "a.yaml:2: endpoints: expected a list, found 'h:1'"),
        ("name: vm1\nendpoints: [\"h:1\"]\nca_pin: PIN\nreconnect_max_seconds: -1\n", "a.yaml:4: reconnect_max_seconds: must be a positive number of seconds"),
        ("name: vm1\nendpoints: [\"h:1\"]\nca_pin: PIN\nextra:\n  nested: 1\n", "a.yaml:4: extra: unknown field"),
        ("- just\n- a list\n", "a.yaml:1: expected a mapping of fields, found a list"),
        ("name: vm1\n  bad indent: x\n", "a.yaml:2: not valid YAML"),
    ])
    func badAgentConfigsAreLocated(yaml: String, expected: String) {
        let text = yaml.replacingOccurrences(of: "PIN", with: pin)
        let error = rejection(AgentConfig.self, text, file: "a.yaml")
        #expect(error?.hasPrefix(expected) == true, "got: \(error ?? "no error")")
    }

    @Test func controllerConfigDefaultsAndOverrides() throws {
        let config = try StrictYAML.decode(ControllerConfig.self, from: "listen: 0.0.0.0:9000\nadvertise: [\"10.0.2.2:9000\"]\n", file: "c.yaml")
        #expect(config.listen == Endpoint(host: "0.0.0.0", port: 9000))
        #expect(config.agentEndpoints == [Endpoint(host: "10.0.2.2", port: 9000)])
        #expect(config.agentCertificateSeconds == 86_400)
        let written = try StrictYAML.decode(ControllerConfig.self, from: config.yaml(), file: "c.yaml")
        #expect(written == config)
        #expect(throws: ConfigError.self) { try StrictYAML.decode(ControllerConfig.self, from: "listen: nowhere\n", file: "c.yaml") }
    }

    @Test func endpointsParseHostsAndIPv6() throws {
        #expect(try Endpoint(parsing: "[fe80::1]:22") == Endpoint(host: "fe80::1", port: 22))
        #expect(try Endpoint(parsing: "example.org:443").description == "example.org:443")
        #expect(throws: ValueError.self) { try Endpoint(parsing: ":443") }
        #expect(throws: ValueError.self) { try Endpoint(parsing: "host") }
    }

    @Test func missingFilesAreNamed() {
        #expect(throws: ConfigError(file: "/nope/agent.yaml", line: nil, field: "", problem: "cannot read the file (no such file)")) {
            try AgentConfig.load(path: "/nope/agent.yaml")
        }
    }
}
