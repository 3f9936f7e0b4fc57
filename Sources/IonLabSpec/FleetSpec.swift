import Foundation
import IonLabConfig
import IonLabYAML

/// A fleet: N VMs, of one image unless a VM names its own, placed on backends, each running the same workflow
/// (`controller-config/fleets/`).
public struct FleetSpec: Codable, Sendable, Equatable {
    public var name: String
    public var backend: FleetBackend
    public var image: String
    public var vms: [FleetVM]
    public var resources: Resources
    public var workflow: [WorkflowStep]

    /// CPUs, memory and disk of each VM unless the VM says otherwise.
    public struct Resources: Codable, Sendable, Equatable {
        public var cpus: Int
        public var memoryMib: Int
        public var diskGib: Int

        public init(cpus: Int = 1, memoryMib: Int = 512, diskGib: Int = 4) {
            self.cpus = cpus
            self.memoryMib = memoryMib
            self.diskGib = diskGib
        }

        enum CodingKeys: String, CodingKey { case cpus, memoryMib, diskGib }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Resources()
            cpus = try container.decodeIfPresent(Int.self, forKey: .cpus, check: Check.range(VMLimits.cpus)) ?? defaults.cpus
            memoryMib = try container.decodeIfPresent(Int.self, forKey: .memoryMib, check: Check.range(VMLimits.memoryMiB)) ?? defaults.memoryMib
            diskGib = try container.decodeIfPresent(Int.self, forKey: .diskGib, check: Check.range(VMLimits.diskGiB)) ?? defaults.diskGib
        }
    }

    enum CodingKeys: String, CodingKey { case name, backend, image, count, vms, resources, workflow }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
        backend = try container.decodeIfPresent(FleetBackend.self, forKey: .backend) ?? .auto
        image = try container.decode(String.self, forKey: .image, check: Check.nonEmpty)
        resources = try container.decodeIfPresent(Resources.self, forKey: .resources) ?? Resources()
        let count = try container.decodeIfPresent(Int.self, forKey: .count, check: Check.range(1...1000))
        let listed = try container.decodeIfPresent([FleetVM].self, forKey: .vms, check: Self.checkUnique)
        switch (count, listed) {
        case (let count?, nil):
            let fleet = name
            vms = (1...count).map { FleetVM(name: "\(fleet)-\($0)") }
        case (nil, let listed?): vms = listed
        case (nil, nil):
            throw DecodingError.keyNotFound(CodingKeys.count, .init(codingPath: decoder.codingPath, debugDescription: "give count or vms"))
        case (_?, _?):
            throw DecodingError.dataCorruptedError(forKey: .vms, in: container, debugDescription: "give count or vms, not both")
        }
        workflow = try container.decodeIfPresent([WorkflowStep].self, forKey: .workflow) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(backend, forKey: .backend)
        try container.encode(image, forKey: .image)
        try container.encode(vms, forKey: .vms)
        try container.encode(resources, forKey: .resources)
        try container.encode(workflow, forKey: .workflow)
    }

    static func checkUnique(_ vms: [FleetVM]) throws {
        try Check.nonEmpty(vms)
        var seen = Set<String>()
        for vm in vms where !seen.insert(vm.name).inserted { throw ValueError("VM '\(vm.name)' is listed twice") }
        // A host address takes one forward, whichever VM it leads to.
        var hostPorts: [Endpoint: String] = [:]
        for vm in vms {
            for forward in vm.forwards {
                if let other = hostPorts.updateValue(vm.name, forKey: forward.listen), other != vm.name {
                    throw ValueError("host address \(forward.listen) is forwarded to both \(other) and \(vm.name)")
                }
            }
        }
    }

    public static func load(path: String) throws -> FleetSpec { try StrictYAML.load(FleetSpec.self, path: path) }

    /// The image `vm` is made from: its own, else the fleet's.
    public func image(of vm: FleetVM) -> String { vm.image ?? image }

    /// Every image the fleet's VMs are made from, the fleet's first.
    public var images: [String] {
        var seen = Set<String>()
        return ([image] + vms.map(image(of:))).filter { seen.insert($0).inserted }
    }

    /// "2 VM(s) of bookworm-desktop", or with a VM's own image "3 VM(s) of bookworm-desktop (1 of bookworm-test)".
    public var vmsAndImages: String {
        let others = images.dropFirst().map { other in "\(vms.filter { image(of: $0) == other }.count) of \(other)" }
        return "\(vms.count) VM(s) of \(image)" + (others.isEmpty ? "" : " (\(others.joined(separator: ", ")))")
    }
}

/// Where a fleet's VMs go: `auto` (placement picks), one backend, or a list to spread them over.
public enum FleetBackend: Codable, Sendable, Equatable {
    case auto
    case named([String])

    public init(from decoder: Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var names: [String] = []
            while !list.isAtEnd { names.append(try list.decode(String.self)) }
            guard !names.isEmpty else { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must not be empty")) }
            self = .named(names)
            return
        }
        let text = try decoder.singleValueContainer().decode(String.self)
        self = text == "auto" ? .auto : .named([text])
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .auto:
            var container = encoder.singleValueContainer()
            try container.encode("auto")
        case .named(let names):
            var container = encoder.unkeyedContainer()
            for name in names { try container.encode(name) }
        }
    }
}

/// One VM of a fleet, optionally with an image and resources of its own, and the port forwards the controller
/// keeps for it while the fleet has it.
public struct FleetVM: Codable, Sendable, Equatable {
    public var name: String
    /// An image from the catalog other than the fleet's.
    public var image: String?
    public var cpus: Int?
    public var memoryMib: Int?
    public var diskGib: Int?
    /// Host ports forwarded into the VM, `[ADDR:]PORT:[HOST:]PORT` as `ionlab forward` takes them.
    public var forwards: [PortForward]
    /// Ports in the VM forwarded to the host, as `ionlab forward --reverse` takes them.
    public var reverseForwards: [PortForward]

    public init(name: String, image: String? = nil, cpus: Int? = nil, memoryMib: Int? = nil, diskGib: Int? = nil,
                forwards: [PortForward] = [], reverseForwards: [PortForward] = []) {
        self.name = name
        self.image = image
        self.cpus = cpus
        self.memoryMib = memoryMib
        self.diskGib = diskGib
        self.forwards = forwards
        self.reverseForwards = reverseForwards
    }

    enum CodingKeys: String, CodingKey { case name, image, cpus, memoryMib, diskGib, forwards, reverseForwards }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
        image = try container.decodeIfPresent(String.self, forKey: .image, check: Check.nonEmpty)
        cpus = try container.decodeIfPresent(Int.self, forKey: .cpus, check: Check.range(VMLimits.cpus))
        memoryMib = try container.decodeIfPresent(Int.self, forKey: .memoryMib, check: Check.range(VMLimits.memoryMiB))
        diskGib = try container.decodeIfPresent(Int.self, forKey: .diskGib, check: Check.range(VMLimits.diskGiB))
        forwards = try container.decodeIfPresent([PortForward].self, forKey: .forwards, check: { try Self.checkListens($0, "forwarded") }) ?? []
        reverseForwards = try container.decodeIfPresent([PortForward].self, forKey: .reverseForwards,
                                                        check: { try Self.checkListens($0, "reverse forwarded") }) ?? []
    }

    static func checkListens(_ forwards: [PortForward], _ what: String) throws {
        var seen = Set<Endpoint>()
        for forward in forwards where !seen.insert(forward.listen).inserted { throw ValueError("\(forward.listen) is \(what) twice") }
    }
}

/// One step of a workflow: exactly one operation, with a timeout and what to do when it fails.
public struct WorkflowStep: Codable, Sendable, Equatable {
    public enum Operation: Codable, Sendable, Equatable {
        /// Runs an argv (no shell unless the argv asks for one).
        case exec([String])
        /// Copies a local file or tree (relative to the spec) into the VM, leaving out paths that match `exclude`.
        case copy(from: String, to: String, exclude: [String] = [])
        /// Installs packages: by name with apt, or a `.deb` sent over the channel or downloaded by the VM.
        case package(PackageSource)
        /// Brings a systemd service to a state, installing its unit file first when one is given.
        case service(ServiceSpec)
        /// Checks the VM: units active, processes, ports, commands, D-Bus names, a RustDesk ID.
        case verify([Probe])
        /// Installs, configures and starts RustDesk, then reads its ID.
        case rustdesk(RustDeskSpec)
        /// Runs the steps of a recipe file (relative to the spec).
        case recipe(String)
        /// Presses keys, types or waits for a text on the VM's screen, through the hypervisor.
        case desktop(DesktopInput)
    }

    public enum FailurePolicy: TextValue, Sendable, Equatable {
        case stop, `continue`, retry(Int)

        public init(parsing text: String) throws {
            switch text {
            case "stop": self = .stop
            case "continue": self = .continue
            default:
                guard text.hasPrefix("retry:"), let count = Int(text.dropFirst(6)), (1...10).contains(count) else {
                    throw ValueError("expected stop, continue or retry:N (N in 1...10), found '\(text)'")
                }
                self = .retry(count)
            }
        }

        public var description: String {
            switch self {
            case .stop: "stop"
            case .continue: "continue"
            case .retry(let count): "retry:\(count)"
            }
        }
    }

    public var name: String
    public var operation: Operation
    public var timeoutSeconds: Double
    public var onFailure: FailurePolicy

    public init(name: String, operation: Operation, timeoutSeconds: Double = 600, onFailure: FailurePolicy = .stop) {
        self.name = name
        self.operation = operation
        self.timeoutSeconds = timeoutSeconds
        self.onFailure = onFailure
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, exec, copy, package, service, verify, rustdesk, recipe, desktop, timeoutSeconds, onFailure
    }

    static let operationKeys: [CodingKeys] = [.exec, .copy, .package, .service, .verify, .rustdesk, .recipe, .desktop]

    struct CopyFields: Codable {
        var from: String
        var to: String
        var exclude: [String]?
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let given = Self.operationKeys.filter { container.contains($0) }
        guard given.count == 1, let key = given.first else {
            let names = Self.operationKeys.map(\.stringValue).joined(separator: ", ")
            let problem = given.isEmpty ? "a step needs one of \(names)"
                : "a step takes one operation, found \(given.map(\.stringValue).joined(separator: " and "))"
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
        }
        switch key {
        case .exec: operation = .exec(try container.decode([String].self, forKey: .exec, check: Check.nonEmpty))
        case .copy:
            let fields = try container.decode(CopyFields.self, forKey: .copy)
            operation = .copy(from: fields.from, to: fields.to, exclude: fields.exclude ?? [])
        case .package: operation = .package(try container.decode(PackageSource.self, forKey: .package))
        case .service: operation = .service(try container.decode(ServiceSpec.self, forKey: .service))
        case .verify: operation = .verify(try container.decode([Probe].self, forKey: .verify, check: Check.nonEmpty))
        case .rustdesk: operation = .rustdesk(try container.decode(RustDeskSpec.self, forKey: .rustdesk))
        case .desktop: operation = .desktop(try container.decode(DesktopInput.self, forKey: .desktop))
        default: operation = .recipe(try container.decode(String.self, forKey: .recipe, check: Check.nonEmpty))
        }
        name = try container.decodeIfPresent(String.self, forKey: .name, check: Check.nonEmpty) ?? Self.describe(operation)
        timeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .timeoutSeconds, check: Check.seconds) ?? 600
        onFailure = try container.decodeIfPresent(FailurePolicy.self, forKey: .onFailure) ?? .stop
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        switch operation {
        case .exec(let argv): try container.encode(argv, forKey: .exec)
        case .copy(let from, let to, let exclude):
            try container.encode(CopyFields(from: from, to: to, exclude: exclude.isEmpty ? nil : exclude), forKey: .copy)
        case .package(let source): try container.encode(source, forKey: .package)
        case .service(let service): try container.encode(service, forKey: .service)
        case .verify(let probes): try container.encode(probes, forKey: .verify)
        case .rustdesk(let spec): try container.encode(spec, forKey: .rustdesk)
        case .recipe(let path): try container.encode(path, forKey: .recipe)
        case .desktop(let input): try container.encode(input, forKey: .desktop)
        }
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(onFailure, forKey: .onFailure)
    }

    static func describe(_ operation: Operation) -> String {
        switch operation {
        case .exec(let argv): "exec \(argv.joined(separator: " "))"
        case .copy(let from, let to, _): "copy \(from) to \(to)"
        case .package(let source): "install \(source.summary)"
        case .service(let service): "\(service.name) \(service.state)"
        case .verify(let probes): "verify \(probes.map(\.label).joined(separator: ", "))"
        case .rustdesk: "rustdesk"
        case .recipe(let path): "recipe \(path)"
        case .desktop(let input): input.summary
        }
    }
}

/// The resources one VM may ask for, wherever it asks (`vm create`, fleet specs).
public enum VMLimits {
    public static let cpus = 1...64
    public static let memoryMiB = 128...262_144
    public static let diskGiB = 1...4096

    public static func allow(cpus: Int, memoryMiB: Int, diskGiB: Int) -> Bool {
        Self.cpus.contains(cpus) && Self.memoryMiB.contains(memoryMiB) && Self.diskGiB.contains(diskGiB)
    }

    public static var summary: String {
        func span(_ range: ClosedRange<Int>) -> String { "\(range.lowerBound)-\(range.upperBound)" }
        return "cpus \(span(cpus)), memory \(span(memoryMiB)) MiB, disk \(span(diskGiB)) GiB"
    }
}

extension FleetSpec {
    /// The spec with every secret (a RustDesk password) replaced by `digest(secret)`: what may be stored.
    public func redactingSecrets(_ digest: (String) -> String) -> FleetSpec {
        var spec = self
        spec.workflow = workflow.map { $0.redactingSecrets(digest) }
        return spec
    }
}

extension WorkflowStep {
    /// The step with its secrets replaced by `digest(secret)`, for storing and for comparing definitions.
    public func redactingSecrets(_ digest: (String) -> String) -> WorkflowStep {
        guard case .rustdesk(var spec) = operation, let password = spec.password else { return self }
        spec.password = digest(password)
        var step = self
        step.operation = .rustdesk(spec)
        return step
    }
}
