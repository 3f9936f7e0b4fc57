import Foundation

/// What `ionlab vm create` asks for.
public struct VMCreateRequest: Codable, Sendable {
    public var name: String
    public var image: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskGiB: Int
    /// A backend name from the controller config; the first one when nil.
    public var backend: String?
    /// Stream the timeline until the VM is ready (else reply once it has started).
    public var wait: Bool
    /// The fleet the VM is created for, if any.
    public var fleet: String?

    public init(name: String, image: String, cpus: Int = 1, memoryMiB: Int = 512, diskGiB: Int = 4, backend: String? = nil,
                wait: Bool = true, fleet: String? = nil) {
        self.name = name
        self.image = image
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.backend = backend
        self.wait = wait
        self.fleet = fleet
    }
}

/// Everything about one VM: its record (backend, resources, disks, console, facts), its domain as libvirt
/// sees it now, and its agent with its health.
public struct VMInfo: Codable, Sendable {
    public var record: VMRecord
    /// libvirt's state of the domain (running, shut-off, paused…), or nil when the backend did not answer.
    public var domainState: String?
    public var agent: AgentStatus?
    /// The port forwards the controller holds for it now.
    public var forwards: [ForwardRecord]
    /// Its snapshots, oldest first (empty when the backend did not answer).
    public var snapshots: [SnapshotInfo]
    /// Its last boot, milestone by milestone.
    public var boot: BootTimeline?

    public init(record: VMRecord, domainState: String?, agent: AgentStatus?, forwards: [ForwardRecord] = [], snapshots: [SnapshotInfo] = [],
                boot: BootTimeline? = nil) {
        self.record = record
        self.domainState = domainState
        self.agent = agent
        self.forwards = forwards
        self.snapshots = snapshots
        self.boot = boot
    }
}

/// A screenshot about to follow as data: its size in pixels and in bytes of PNG.
public struct ScreenshotHeader: Codable, Sendable, Equatable {
    public static let maximumBytes = 64 << 20
    public var width: Int
    public var height: Int
    public var bytes: Int

    public init(width: Int, height: Int, bytes: Int) {
        self.width = width
        self.height = height
        self.bytes = bytes
    }
}

/// What `ionlab desktop key | type | wait-text` did.
public struct DesktopResult: Codable, Sendable, Equatable {
    /// "pressed super+Return", "typed 14 characters", "read 'hello' after 3.2 s (2 readings)".
    public var summary: String
    /// For a wait: whether the text was read.
    public var found: Bool?
    /// For a wait: what OCR read last, on one line (a guest's screen: escape it before showing it).
    public var read: String?
    public var seconds: Double
    /// For a wait: the screen it read last, kept as the VM's `picture.screen_text`.
    public var picture: String?

    public init(summary: String, found: Bool? = nil, read: String? = nil, seconds: Double, picture: String? = nil) {
        self.summary = summary
        self.found = found
        self.read = read
        self.seconds = seconds
        self.picture = picture
    }
}

/// A document the controller sends as data after this header: its size and media type.
public struct DocumentHeader: Codable, Sendable, Equatable {
    public static let maximumBytes = 256 << 20
    public var bytes: Int
    public var mediaType: String

    public init(bytes: Int, mediaType: String) {
        self.bytes = bytes
        self.mediaType = mediaType
    }
}

/// How to reach a VM's graphical console.
public struct DisplayInfo: Codable, Sendable, Equatable {
    public var backend: String
    public var uri: String
    /// `vnc`.
    public var type: String
    /// The UNIX socket it listens on, on the backend's host.
    public var socket: String?
    public var password: String?

    public init(backend: String, uri: String, type: String, socket: String?, password: String?) {
        self.backend = backend
        self.uri = uri
        self.type = type
        self.socket = socket
        self.password = password
    }
}

/// What `vm snapshot create | list | revert | delete` asks.
public enum SnapshotAction: Codable, Sendable {
    case create(name: String, description: String?)
    case list
    /// With `wait`, a revert to a running snapshot replies once the VM's agent is back.
    case revert(name: String, wait: Bool)
    case delete(name: String)
}

/// A snapshot of a VM as libvirt keeps it.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    public var name: String
    public var created: Date?
    /// The domain's state when it was taken (`running`: its memory was saved too, and a revert resumes it).
    public var domainState: String?
    public var hasMemory: Bool
    public var description: String?

    public init(name: String, created: Date?, domainState: String?, hasMemory: Bool, description: String?) {
        self.name = name
        self.created = created
        self.domainState = domainState
        self.hasMemory = hasMemory
        self.description = description
    }
}

/// A VM as the controller's store keeps it.
public struct VMRecord: Codable, Sendable {
    public enum State: String, Codable, Sendable {
        /// Created and booting; the agent of this instance has not connected yet.
        case provisioning
        /// The agent of this instance has enrolled and connected.
        case ready
        /// Shut off by `vm stop`: its disk stays, `vm start` boots it again.
        case stopped
        /// Paused by `vm suspend`: its memory stays, `vm resume` goes on.
        case suspended
    }

    public var name: String
    public var backend: String
    public var image: String
    public var state: State
    public var instanceID: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskGiB: Int
    public var domainType: String
    public var domainUUID: String
    public var pool: String
    public var volumes: [String]
    public var seedHash: String
    public var consoleLog: String
    public var createdAt: Date
    public var readyAt: Date?
    /// The fleet that owns the VM, if any.
    public var fleet: String?
    /// What steps learned about the VM, by name ("rustdesk.id", "rustdesk.version").
    public var facts: [String: String]

    public init(name: String, backend: String, image: String, state: State, instanceID: String, cpus: Int, memoryMiB: Int,
                diskGiB: Int, domainType: String, domainUUID: String, pool: String, volumes: [String], seedHash: String,
                consoleLog: String, createdAt: Date, readyAt: Date? = nil, fleet: String? = nil) {
        self.name = name
        self.backend = backend
        self.image = image
        self.state = state
        self.instanceID = instanceID
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.domainType = domainType
        self.domainUUID = domainUUID
        self.pool = pool
        self.volumes = volumes
        self.seedHash = seedHash
        self.consoleLog = consoleLog
        self.createdAt = createdAt
        self.readyAt = readyAt
        self.fleet = fleet
        self.facts = [:]
    }
}

/// The facts a VM's pictures are recorded under (`picture.first`, `picture.after_input`): the controller's
/// remote-desktop probe writes them, the demo's summary lists them.
public enum PictureFacts {
    public static let prefix = "picture."
    /// The remote-desktop probe's two frames, in the order it takes them, and its session as an animated PNG.
    public static let remoteDesktop = ["first", "after_input", "remote_desktop_session"]
    /// The portal-session probe's: its first frame, its last (matched against the hypervisor's screen), the
    /// hypervisor's screen then, and the session as an animated PNG.
    public static let portalSession = ["portal_first", "portal_last", "portal_hypervisor", "portal_session"]
    /// The screen a `screen_text` probe or a `wait_text` step read last.
    public static let screenText = ["screen_text"]
    /// Every picture name, in the order a summary lists them.
    public static let all = remoteDesktop + portalSession + screenText
    /// The names of animated pictures.
    public static let animated: Set<String> = ["remote_desktop_session", "portal_session"]
}
