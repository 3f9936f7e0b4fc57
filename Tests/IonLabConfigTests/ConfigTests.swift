import IonLabConfig
import IonLabYAML
import IonLabControllerConfig
import Foundation
import Testing

@Suite struct ConfigTests {
    let pin = "sha256:" + String(repeating: "ab", count: 32)

    @Test func aCompleteAgentConfigRoundTripsThroughJSON() throws {
        let config = AgentConfig(name: "vm1", endpoints: [Endpoint(host: "10.0.2.2", port: 7443), Endpoint(host: "::1", port: 7443)],
                                 caPin: try CAPin(parsing: pin), token: "ionlab-secret", heartbeatSeconds: 5)
        let decoded = try AgentConfig.decode(Data(config.json().utf8), file: "agent.json")
        #expect(decoded == config)
        #expect(config.json().contains("\"[::1]:7443\""))
        #expect(config.json().contains("\"ca_pin\" : \"\(pin)\""))
    }

    @Test func defaultsFillOptionalSettings() throws {
        let config = try AgentConfig.decode(Data("{\"name\": \"vm1\", \"endpoints\": [\"h:1\"], \"ca_pin\": \"\(pin)\"}".utf8), file: "a.json")
        #expect(config.token == nil)
        #expect(config.heartbeatSeconds == 10)
        #expect(config.reconnectMaxSeconds == 10)
    }

    @Test(arguments: [
        (#"{"name": "VM_1!", "endpoints": ["h:1"], "ca_pin": "PIN"}"#, "a.json: name: 'VM_1!' is not a valid name"),
        (#"{"name": "vm1", "endpoints": [], "ca_pin": "PIN"}"#, "a.json: endpoints: must not be empty"),
        (#"{"name": "vm1", "endpoints": ["h:1", "h:99999"], "ca_pin": "PIN"}"#, "a.json: endpoints[1]: expected HOST:PORT with a port in 1...65535"),
        (#"{"name": "vm1", "endpoints": "h:1", "ca_pin": "PIN"}"#, "a.json: endpoints: expected a list, found a string"),
        (#"{"name": "vm1", "endpoints": ["h:1"], "ca_pin": "PIN", "reconnect_max_seconds": -1}"#, "a.json: reconnect_max_seconds: must be a positive number of seconds"),
        (#"{"name": "vm1", "endpoints": ["h:1"], "ca_pin": "PIN", "extra": {"nested": 1}}"#, "a.json: extra: unknown field"),
        (#"{"name": "vm1", "endpoints": ["h:1"], "caPin": "PIN"}"#, "a.json: ca_pin: missing required field"),
        (#"["just", "a list"]"#, "a.json: expected a mapping of fields, found an array"),
        (#"{"name": "vm1", "endpoints": ["h:1"]"#, "a.json: not valid JSON"),
        (#"{"name": "vm1", "endpoints": ["h:1"], "ca_pin": "PIN", "heartbeat_seconds": "soon"}"#, "a.json: heartbeat_seconds: expected a number, found a string"),
        (#"{"name": "vm1", "endpoints": {"h": 1}, "ca_pin": "PIN"}"#, "a.json: endpoints: expected a list, found a dictionary"),
    ])
    func badAgentConfigsAreNamed(json: String, expected: String) {
        let text = json.replacingOccurrences(of: "PIN", with: pin)
        do {
            _ = try AgentConfig.decode(Data(text.utf8), file: "a.json")
            Issue.record("accepted: \(text)")
        } catch let error as ConfigError {
            #expect(error.description.hasPrefix(expected), "got: \(error)")
        } catch {
            Issue.record("not a ConfigError: \(error)")
        }
    }

    /// The strict YAML decoder's own rules, on a small type shaped like a config.
    struct Sample: Decodable {
        var name: String
        var endpoints: [Endpoint]
        var caPin: CAPin
        var reconnectMaxSeconds: Double?
        enum CodingKeys: String, CodingKey { case name, endpoints, caPin, reconnectMaxSeconds }
        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
            endpoints = try container.decode([Endpoint].self, forKey: .endpoints, check: Check.nonEmpty)
            caPin = try container.decode(CAPin.self, forKey: .caPin)
            reconnectMaxSeconds = try container.decodeIfPresent(Double.self, forKey: .reconnectMaxSeconds, check: Check.seconds)
        }
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
    func badYAMLIsLocated(yaml: String, expected: String) {
        let text = yaml.replacingOccurrences(of: "PIN", with: pin)
        let error = rejection(Sample.self, text, file: "a.yaml")
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
        #expect(throws: ConfigError(file: "/nope/agent.json", line: nil, field: "", problem: "cannot read the file (no such file)")) {
            try AgentConfig.load(path: "/nope/agent.json")
        }
        #expect(throws: ConfigError(file: "/nope/c.yaml", line: nil, field: "", problem: "cannot read the file (no such file)")) {
            try StrictYAML.load(ControllerConfig.self, path: "/nope/c.yaml")
        }
    }
}
