import Foundation
import IonLabAdminAPI
import IonLabDashboard
import IonLabWire
import Logging
import NIOConcurrencyHelpers

/// The persistent event stream: every event is stored, logged, then handed to live followers in order.
public final class EventLog: Sendable {
    let store: Store
    let logger: Logger
    /// Counts every stored event (`/metrics`).
    let metrics: LabMetrics
    private let state = NIOLockedValueBox<[UUID: AsyncStream<Event>.Continuation]>([:])
    /// Which fleet each fleet VM's agent belongs to, so that its events carry the fleet.
    private let fleets = NIOLockedValueBox<[String: String]>([:])

    init(store: Store, logger: Logger, metrics: LabMetrics = LabMetrics()) {
        self.store = store
        self.logger = logger
        self.metrics = metrics
    }

    /// From now on, events of `agent` carry `fleet` (nil: none).
    func assign(agent: String, fleet: String?) {
        fleets.withLockedValue { $0[agent] = fleet }
    }

    /// Records an event. Storage failures are logged, never thrown: events must not break operations.
    @discardableResult
    func emit(_ kind: EventKind, agent: String? = nil, job: String? = nil, fleet: String? = nil, _ message: String,
              detail: EventDetail? = nil) -> Event? {
        let fleet = fleet ?? agent.flatMap { agent in fleets.withLockedValue { $0[agent] } }
        // Messages and details often quote what a guest said: each is kept to a bounded size.
        let event = Event(kind: kind, agent: agent, job: job, fleet: fleet, message: Self.bounded(message), detail: Self.bounded(detail))
        let who = agent.map { "\($0): " } ?? ""
        logger.info("\(kind.rawValue) \(who)\(Format.escaped(event.message))")
        return state.withLockedValue { followers in
            do {
                let stored = try store.append(event)
                metrics.record(stored)
                for follower in followers.values { follower.yield(stored) }
                return stored
            } catch {
                logger.error("cannot store event \(kind.rawValue): \(error)")
                return nil
            }
        }
    }

    static let maximumText = 4096
    /// The most JSON an event's detail may take; a larger one (many facts a guest reported) is dropped.
    static let maximumDetailBytes = 16 << 10

    static func bounded(_ detail: EventDetail?) -> EventDetail? {
        guard let detail, Store.json(detail).utf8.count <= maximumDetailBytes else { return nil }
        return detail
    }

    /// At most ``maximumText`` bytes of UTF-8, cut at a character.
    static func bounded(_ text: String) -> String {
        guard text.utf8.count > maximumText else { return text }
        var cut = ""
        for character in text {
            guard cut.utf8.count + character.utf8.count < maximumText - 3 else { break }
            cut.append(character)
        }
        return cut + "…"
    }

    /// Sends the stored events after `seq` (optionally since a time, of one fleet) in parts, then with `follow`
    /// live ones as they come, with no gap and no repeat: a follower that fell behind gets what it missed
    /// from the store. With `follow`, runs until `send` throws or the task is cancelled.
    func stream(after seq: Int64, since: Date? = nil, fleet: String? = nil, follow: Bool,
                send: ([Event]) async throws -> Void) async throws {
        let live = follow ? self.follow() : nil
        defer { live?.stop() }
        var last = seq
        while true {
            let batch = try store.events(after: last, since: since, fleet: fleet, limit: 1000)
            if batch.isEmpty { break }
            try await send(batch)
            last = batch.last!.seq
        }
        guard let live else { return }
        for await event in live.events where event.seq > last {
            if event.seq > last + 1 {
                let missed = try store.events(after: last, fleet: fleet, limit: Int(min(event.seq - last - 1, 100_000)))
                if !missed.isEmpty { try await send(missed) }
            }
            last = event.seq
            if fleet == nil || event.fleet == fleet { try await send([event]) }
        }
    }

    /// Live events from now on. Call `stop` when done.
    func follow() -> (events: AsyncStream<Event>, stop: @Sendable () -> Void) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingOldest(100_000))
        state.withLockedValue { $0[id] = continuation }
        let stop: @Sendable () -> Void = { [state] in
            state.withLockedValue { $0.removeValue(forKey: id) }?.finish()
        }
        return (stream, stop)
    }
}
