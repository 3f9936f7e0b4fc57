import Foundation
import IonLabAdminAPI
import Testing

/// A VM's boot, milestone by milestone, from its events: counted from the boot's first event, the agent's
/// start placed from its hello, and only the last boot.
@Suite struct BootTimelineTests {
    static let origin = Date(timeIntervalSince1970: 1_800_000_000)

    static func event(_ kind: EventKind, _ seconds: Double, _ detail: EventDetail? = nil) -> Event {
        Event(seq: 0, time: origin.addingTimeInterval(seconds), kind: kind, agent: "vm1", message: "", detail: detail)
    }

    static let connected = event(.agentConnected, 33, .connection(ConnectionDetail(remote: "10.0.2.15:4000", bootID: "b", software: "a",
                                                                                   agentAgeSeconds: 1.5)))

    @Test func aCreatedVMsBootReadsInTheOrderItHappened() {
        let events = [Self.event(.vmProvisioning, 0), Self.event(.vmDefined, 0.4), Self.event(.vmStarted, 0.6), Self.event(.vmKernelUp, 3.1),
                      Self.event(.vmCloudInit, 14), Self.event(.vmCloudInitNetwork, 20), Self.event(.vmCloudInitConfig, 26),
                      Self.event(.vmCloudInitFinal, 29), Self.event(.vmAgentInstalled, 31), Self.event(.agentEnrolled, 32.8),
                      Self.connected, Self.event(.vmReady, 33.2), Self.event(.vmCloudInitDone, 40)]
        let timeline = BootTimeline.of(events)
        #expect(timeline.milestones.map(\.name) == ["provisioning", "domain defined", "domain started", "kernel", "cloud-init local",
                                                   "cloud-init network", "cloud-init config", "cloud-init final", "agent installed",
                                                   "agent started", "enrolled", "TLS connected", "ready", "cloud-init done"])
        #expect(timeline.milestones.first { $0.name == "agent started" }?.seconds == 31.5)
        #expect(timeline.text.hasPrefix("provisioning 0.0 s · domain defined 0.4 s (+0.4) · domain started 0.6 s (+0.2) · kernel 3.1 s (+2.5)"))
    }

    /// A restart: the timeline starts at the stop, and what the first boot did is not counted again.
    @Test func onlyTheLastBootCounts() {
        let events = [Self.event(.vmProvisioning, 0), Self.event(.vmStarted, 1), Self.event(.vmKernelUp, 4), Self.event(.vmReady, 40),
                      Self.event(.vmStopped, 100), Self.event(.vmStarted, 101), Self.event(.vmKernelUp, 103),
                      Self.event(.agentConnected, 120), Self.event(.vmReady, 120.5)]
        let timeline = BootTimeline.of(events)
        #expect(timeline.milestones == [.init(name: "domain started", seconds: 1), .init(name: "kernel", seconds: 3),
                                        .init(name: "TLS connected", seconds: 20), .init(name: "ready", seconds: 20.5)])
        #expect(BootTimeline.of([]).milestones.isEmpty)
    }
}
