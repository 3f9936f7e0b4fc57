import Foundation
import GRDB
import IonLabAdminAPI
import IonLabAgentProtocol
import IonLabWire

/// The controller's persistent state in SQLite (WAL): agents, certificates, tokens, jobs and events.
/// Every change is a transaction, so a kill -9 loses nothing that was acknowledged.
public final class Store: Sendable {
    let pool: DatabasePool

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // WAL with synchronous=NORMAL: a commit survives the process being killed (even with -9); only a power
        // loss can drop the last commits. It saves an fsync per transaction.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE agents(
                    name TEXT PRIMARY KEY, state TEXT NOT NULL, created_at REAL NOT NULL, enrolled_at REAL,
                    revoked_at REAL, last_seen REAL, boot_id TEXT, health TEXT);
                CREATE TABLE certificates(
                    serial TEXT PRIMARY KEY, agent TEXT NOT NULL, issued_at REAL NOT NULL, not_after REAL NOT NULL,
                    revoked_at REAL);
                CREATE INDEX certificates_agent ON certificates(agent);
                CREATE TABLE tokens(
                    hash TEXT PRIMARY KEY, agent TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
                    used_at REAL);
                CREATE TABLE jobs(
                    id TEXT PRIMARY KEY, agent TEXT NOT NULL, argv TEXT NOT NULL, started_at REAL NOT NULL,
                    finished_at REAL, result TEXT);
                CREATE INDEX jobs_agent ON jobs(agent, finished_at);
                CREATE TABLE events(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL, agent TEXT,
                    job TEXT, message TEXT NOT NULL, fields TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v2-vms") { db in
            try db.execute(sql: """
                CREATE TABLE vms(name TEXT PRIMARY KEY, state TEXT NOT NULL, record TEXT NOT NULL, updated_at REAL NOT NULL);
                """)
        }
        migrator.registerMigration("v3-fleets") { db in
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN fleet TEXT;
                CREATE INDEX events_fleet ON events(fleet, seq);
                CREATE INDEX events_time ON events(time);
                CREATE TABLE fleets(name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at REAL NOT NULL);
                CREATE TABLE fleet_steps(
                    fleet TEXT NOT NULL, vm TEXT NOT NULL, step INTEGER NOT NULL, signature TEXT NOT NULL, name TEXT NOT NULL,
                    state TEXT NOT NULL, job TEXT, started_at REAL NOT NULL, finished_at REAL, detail TEXT,
                    PRIMARY KEY(fleet, vm, step));
                """)
        }
        migrator.registerMigration("v4-idempotent-enrollment") { db in
            // The key a token was spent for, and the certificate issued: the same key enrolling again while the
            // token lives gets the same certificate (a dropped `enrolled` reply must not strand the agent).
            // Likewise a recovery (a renewal with an expired certificate) is recorded with the certificate it
            // replaces, its key and its PEM: only that key may repeat it, and the expired certificate cannot
            // be traded in a second time (by a clone of the VM, say).
            try db.execute(sql: """
                ALTER TABLE tokens ADD COLUMN key_sha256 TEXT;
                ALTER TABLE tokens ADD COLUMN certificate_pem TEXT;
                ALTER TABLE tokens ADD COLUMN certificate_serial TEXT;
                ALTER TABLE certificates ADD COLUMN replaces TEXT;
                ALTER TABLE certificates ADD COLUMN key_sha256 TEXT;
                ALTER TABLE certificates ADD COLUMN pem TEXT;
                CREATE INDEX certificates_replaces ON certificates(replaces);
                CREATE INDEX certificates_not_after ON certificates(not_after);
                CREATE INDEX jobs_finished ON jobs(finished_at);
                """)
        }
        migrator.registerMigration("v5-vm-facts") { db in
            // What steps learn about a VM is kept as facts, whatever the demo: the RustDesk ID and version a
            // record carried become two of them.
            try db.execute(sql: """
                UPDATE vms SET record = json_remove(json_set(record, '$.facts',
                    CASE WHEN json_extract(record, '$.rustdeskID') IS NULL THEN json_object()
                    ELSE json_object('rustdesk.id', json_extract(record, '$.rustdeskID'),
                                     'rustdesk.version', coalesce(json_extract(record, '$.rustdeskVersion'), '?')) END),
                    '$.rustdeskID', '$.rustdeskVersion');
                """)
        }
        migrator.registerMigration("v6-forwards") { db in
            // Port forwards kept across restarts (`forward --keep`, fleet specs), by what they may not share.
            try db.execute(sql: """
                CREATE TABLE forwards(key TEXT PRIMARY KEY, agent TEXT NOT NULL, rule TEXT NOT NULL, owner TEXT NOT NULL);
                CREATE INDEX forwards_agent ON forwards(agent);
                """)
        }
        migrator.registerMigration("v7-events-agent") { db in
            // One VM's events (its boot timeline) without reading everyone's.
            try db.execute(sql: "CREATE INDEX events_agent ON events(agent, seq)")
        }
        return migrator
    }

    /// Sorted keys: equal values encode to equal text (step signatures compare the text).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()
    static let decoder = JSONDecoder()

    static func json<T: Encodable>(_ value: T) -> String {
        String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? decoder.decode(type, from: Data(text.utf8))
    }
}

// MARK: - Agents, tokens and certificates

/// An agent's row.
public struct AgentRecord: Sendable {
    public enum State: String, Sendable { case pending, enrolled, revoked }
    public var name: String
    public var state: State
    public var lastSeen: Date?
    public var bootID: String?
    public var health: Health?
}

/// Why an enrollment token was refused.
enum TokenProblem: Error {
    case unknown, expired(Date), used(Date), otherAgent(String)
}

extension Store {
    /// Records a new token for an agent (creating the agent if needed). A revoked agent becomes pending
    /// again; its old certificates stay revoked.
    func addToken(hash: String, agent: String, expires: Date) throws {
        try pool.write { db in
            let now = Date().timeIntervalSince1970
            try db.execute(sql: """
                INSERT INTO agents(name, state, created_at) VALUES (?, 'pending', ?)
                ON CONFLICT(name) DO UPDATE SET state = CASE state WHEN 'revoked' THEN 'pending' ELSE state END,
                    revoked_at = CASE state WHEN 'revoked' THEN NULL ELSE revoked_at END
                """, arguments: [agent, now])
            try db.execute(sql: "INSERT INTO tokens(hash, agent, created_at, expires_at) VALUES (?, ?, ?, ?)",
                           arguments: [hash, agent, now, expires.timeIntervalSince1970])
        }
    }

    /// Spends a token and records the certificate issued for it, atomically, returning the certificate (PEM).
    /// A token already spent for the same key, still valid and for an agent not revoked since, returns the
    /// certificate issued then: enrollment is idempotent, so an agent whose connection dropped before the
    /// reply can simply retry.
    func spendToken(hash: String, agent: String, keySHA256: String, now: Date = Date(),
                    issue: () throws -> (serial: String, notAfter: Date, pem: String)) throws -> String {
        try pool.write { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT tokens.agent, expires_at, used_at, tokens.key_sha256 AS key_sha256, certificate_pem, agents.state AS state,
                       certificates.revoked_at AS revoked
                FROM tokens LEFT JOIN agents ON agents.name = tokens.agent
                LEFT JOIN certificates ON certificates.serial = tokens.certificate_serial WHERE hash = ?
                """, arguments: [hash]) else {
                throw TokenProblem.unknown
            }
            let owner: String = row["agent"]
            if owner != agent { throw TokenProblem.otherAgent(owner) }
            let expires: Double = row["expires_at"]
            if expires < now.timeIntervalSince1970 { throw TokenProblem.expired(Date(timeIntervalSince1970: expires)) }
            if let used: Double = row["used_at"] {
                let spentFor: String? = row["key_sha256"]
                let state: String? = row["state"]
                if spentFor == keySHA256, state == AgentRecord.State.enrolled.rawValue, (row["revoked"] as Double?) == nil,
                   let pem: String = row["certificate_pem"] {
                    return pem
                }
                throw TokenProblem.used(Date(timeIntervalSince1970: used))
            }
            let certificate = try issue()
            try db.execute(sql: "UPDATE tokens SET used_at = ?, key_sha256 = ?, certificate_pem = ?, certificate_serial = ? WHERE hash = ?",
                           arguments: [now.timeIntervalSince1970, keySHA256, certificate.pem, certificate.serial, hash])
            try db.execute(sql: "UPDATE agents SET state = 'enrolled', enrolled_at = ? WHERE name = ?",
                           arguments: [now.timeIntervalSince1970, agent])
            try Self.insertCertificate(db, serial: certificate.serial, agent: agent, notAfter: certificate.notAfter)
            return certificate.pem
        }
    }

    /// Issues a certificate in place of the one presented, in one transaction with the check that the agent
    /// and that certificate are still in good standing: a renewal racing a revocation either happens first
    /// (and its certificate is revoked with the rest) or is refused.
    func renew(presentedSerial: String, agent: String, issue: () throws -> (serial: String, notAfter: Date)) throws {
        try pool.write { db in
            try Self.checkStanding(db, serial: presentedSerial, agent: agent)
            let certificate = try issue()
            try Self.insertCertificate(db, serial: certificate.serial, agent: agent, notAfter: certificate.notAfter, replaces: presentedSerial)
        }
    }

    /// A renewal with an expired certificate (``renew(presentedSerial:agent:issue:)`` plus idempotence): an
    /// expired certificate is traded in once. The same key asking again (its reply was lost) gets the same
    /// certificate; any other key is refused, so a clone of the VM cannot follow the agent back.
    func recover(presentedSerial: String, agent: String, keySHA256: String,
                 issue: () throws -> (serial: String, notAfter: Date, pem: String)) throws -> String {
        try pool.write { db in
            try Self.checkStanding(db, serial: presentedSerial, agent: agent)
            if let earlier = try Row.fetchOne(db, sql: "SELECT key_sha256, pem, revoked_at FROM certificates WHERE replaces = ? AND pem IS NOT NULL",
                                              arguments: [presentedSerial]) {
                guard (earlier["key_sha256"] as String?) == keySHA256, (earlier["revoked_at"] as Double?) == nil, let pem: String = earlier["pem"] else {
                    throw Refusal(.revoked, "certificate \(presentedSerial) of agent \(agent) was already renewed after it expired; this copy of it may not be")
                }
                return pem
            }
            let certificate = try issue()
            try Self.insertCertificate(db, serial: certificate.serial, agent: agent, notAfter: certificate.notAfter, replaces: presentedSerial,
                                       keySHA256: keySHA256, pem: certificate.pem)
            return certificate.pem
        }
    }

    private static func checkStanding(_ db: Database, serial: String, agent: String) throws {
        let row = try Row.fetchOne(db, sql: """
            SELECT certificates.revoked_at AS revoked, agents.state AS state FROM certificates
            JOIN agents ON agents.name = certificates.agent WHERE serial = ? AND certificates.agent = ?
            """, arguments: [serial, agent])
        guard let row, (row["revoked"] as Double?) == nil, (row["state"] as String?) == AgentRecord.State.enrolled.rawValue else {
            throw Refusal(.revoked, "agent \(agent) or its certificate \(serial) was revoked: no renewal")
        }
    }

    private static func insertCertificate(_ db: Database, serial: String, agent: String, notAfter: Date, replaces: String? = nil,
                                          keySHA256: String? = nil, pem: String? = nil) throws {
        try db.execute(sql: "INSERT INTO certificates(serial, agent, issued_at, not_after, replaces, key_sha256, pem) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       arguments: [serial, agent, Date().timeIntervalSince1970, notAfter.timeIntervalSince1970, replaces, keySHA256, pem])
    }

    /// What the store says of a presented certificate: its owner, whether it was revoked, and its owner's state.
    struct Standing {
        var agent: String
        var revokedAt: Date?
        var agentState: AgentRecord.State?
    }

    /// The standing of a certificate, if the serial is known.
    func standing(serial: String) throws -> Standing? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT certificates.agent AS agent, certificates.revoked_at AS revoked, agents.state AS state
                FROM certificates LEFT JOIN agents ON agents.name = certificates.agent WHERE serial = ?
                """, arguments: [serial]) else {
                return nil
            }
            let revoked: Double? = row["revoked"]
            let state: String? = row["state"]
            return Standing(agent: row["agent"], revokedAt: revoked.map { Date(timeIntervalSince1970: $0) },
                            agentState: state.flatMap(AgentRecord.State.init(rawValue:)))
        }
    }

    /// Revokes an agent: its certificates, its unused tokens, and the agent itself. False if unknown.
    func revoke(agent: String) throws -> Bool {
        try pool.write { db in
            let now = Date().timeIntervalSince1970
            try db.execute(sql: "UPDATE agents SET state = 'revoked', revoked_at = ? WHERE name = ?", arguments: [now, agent])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "UPDATE certificates SET revoked_at = ? WHERE agent = ? AND revoked_at IS NULL", arguments: [now, agent])
            try db.execute(sql: "DELETE FROM tokens WHERE agent = ? AND used_at IS NULL", arguments: [agent])
            return true
        }
    }

    func agents() throws -> [AgentRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, state, last_seen, boot_id, health FROM agents ORDER BY name").map { row in
                let lastSeen: Double? = row["last_seen"]
                return AgentRecord(name: row["name"], state: AgentRecord.State(rawValue: row["state"]) ?? .pending,
                                   lastSeen: lastSeen.map { Date(timeIntervalSince1970: $0) }, bootID: row["boot_id"],
                                   health: Self.decode(Health.self, row["health"]))
            }
        }
    }

    func agent(_ name: String) throws -> AgentRecord? {
        try agents().first { $0.name == name }
    }

    /// Saves the latest heartbeats of many agents in one transaction.
    func saveHeartbeats(_ beats: [(agent: String, seen: Date, health: Health)]) throws {
        guard !beats.isEmpty else { return }
        try pool.write { db in
            for beat in beats {
                try db.execute(sql: "UPDATE agents SET last_seen = ?, boot_id = ?, health = ? WHERE name = ?",
                               arguments: [beat.seen.timeIntervalSince1970, beat.health.bootID, Self.json(beat.health), beat.agent])
            }
        }
    }

    func touch(agent: String, at time: Date = Date()) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE agents SET last_seen = ? WHERE name = ?", arguments: [time.timeIntervalSince1970, agent])
        }
    }
}

// MARK: - Jobs

extension Store {
    func jobStarted(id: String, agent: String, argv: [String], at time: Date = Date()) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO jobs(id, agent, argv, started_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, agent, Self.json(argv), time.timeIntervalSince1970])
        }
    }

    /// Stores a result once. Returns false if the job already had one (results may be reported twice).
    func jobFinished(_ result: ExecResult, agent: String, at time: Date = Date()) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE jobs SET finished_at = ?, result = ? WHERE id = ? AND agent = ? AND finished_at IS NULL",
                           arguments: [time.timeIntervalSince1970, Self.json(result), result.jobID, agent])
            return db.changesCount > 0
        }
    }

    /// Jobs of an agent the store still believes are running.
    func runningJobs(agent: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM jobs WHERE agent = ? AND finished_at IS NULL", arguments: [agent])
        }
    }

    func jobs(agent: String?, limit: Int) throws -> [JobRecord] {
        try pool.read { db in
            let filter = agent == nil ? "" : "WHERE agent = ?"
            let arguments: StatementArguments = agent.map { [$0, limit] } ?? [limit]
            return try Row.fetchAll(db, sql: "SELECT * FROM jobs \(filter) ORDER BY started_at DESC LIMIT ?", arguments: arguments).map { row in
                let finished: Double? = row["finished_at"]
                return JobRecord(jobID: row["id"], agent: row["agent"], argv: Self.decode([String].self, row["argv"]) ?? [],
                                 startedAt: Date(timeIntervalSince1970: row["started_at"]),
                                 finishedAt: finished.map { Date(timeIntervalSince1970: $0) },
                                 result: Self.decode(ExecResult.self, row["result"]))
            }
        }
    }
}

// MARK: - Retention

/// How much history the store keeps.
struct RetentionPolicy {
    var eventCount: Int
    var eventAge: TimeInterval
    var jobCount: Int
    var jobAge: TimeInterval
    /// How long after it expired a certificate's row is kept (its recovery window, and a day more).
    var certificateGrace: TimeInterval
}

extension Store {
    /// Deletes events and finished jobs beyond the policy, oldest first; returns how many of each went.
    /// Running jobs are never deleted.
    @discardableResult
    func prune(_ policy: RetentionPolicy, now: Date = Date()) throws -> (events: Int, jobs: Int) {
        try pool.write { db in
            let seconds = now.timeIntervalSince1970
            try db.execute(sql: """
                DELETE FROM events WHERE time < ? OR seq <= (SELECT MAX(seq) FROM events) - ?
                """, arguments: [seconds - policy.eventAge, policy.eventCount])
            let events = db.changesCount
            try db.execute(sql: """
                DELETE FROM jobs WHERE finished_at IS NOT NULL AND (finished_at < ? OR id IN (
                    SELECT id FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT -1 OFFSET ?))
                """, arguments: [seconds - policy.jobAge, policy.jobCount])
            let jobs = db.changesCount
            // A certificate past its recovery window is refused whatever its row says: the row can go.
            try db.execute(sql: "DELETE FROM certificates WHERE not_after < ?", arguments: [seconds - policy.certificateGrace])
            return (events, jobs)
        }
    }
}

// MARK: - Events

extension Store {
    /// Appends an event and returns it with its sequence number.
    func append(_ event: Event) throws -> Event {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO events(time, kind, agent, job, fleet, message, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [event.time.timeIntervalSince1970, event.kind.rawValue, event.agent, event.job, event.fleet, event.message,
                                       event.detail.map(Self.json) ?? "null"])
            var stored = event
            stored.seq = db.lastInsertedRowID
            return stored
        }
    }

    /// `?, ?, ?`: one SQL parameter per value of an `IN (…)` list.
    static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }

    /// The newest event's sequence number (0 when there is none).
    func lastEventSeq() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0 }
    }

    /// Every VM's events of these kinds, by VM, oldest first: one read for the dashboard's timelines.
    func eventsByAgent(kinds: Set<EventKind>) throws -> [String: [Event]] {
        let marks = Self.placeholders(kinds.count)
        let sql = "SELECT * FROM events WHERE agent IS NOT NULL AND kind IN (\(marks)) ORDER BY seq"
        return try pool.read { db in
            Dictionary(grouping: try Row.fetchAll(db, sql: sql, arguments: StatementArguments(kinds.map(\.rawValue))).map(Self.event)) { $0.agent ?? "" }
        }
    }

    /// One agent's (or VM's) events of these kinds, oldest first: the last `limit` of them.
    func events(of agent: String, kinds: Set<EventKind>, limit: Int = 1_000) throws -> [Event] {
        let marks = Self.placeholders(kinds.count)
        let sql = "SELECT * FROM (SELECT * FROM events WHERE agent = ? AND kind IN (\(marks)) ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        return try pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments([agent] + kinds.map(\.rawValue)) + [limit]).map(Self.event)
        }
    }

    /// Events after `seq`, optionally only those at or after `since` and of one fleet, in order.
    func events(after seq: Int64, since: Date? = nil, fleet: String? = nil, limit: Int = 10_000) throws -> [Event] {
        var sql = "SELECT * FROM events WHERE seq > ?"
        var arguments: StatementArguments = [seq]
        if let since {
            sql += " AND time >= ?"
            arguments += [since.timeIntervalSince1970]
        }
        if let fleet {
            sql += " AND fleet = ?"
            arguments += [fleet]
        }
        arguments += [limit]
        return try pool.read { db in
            try Row.fetchAll(db, sql: sql + " ORDER BY seq LIMIT ?", arguments: arguments).map(Self.event)
        }
    }

    private static func event(_ row: Row) -> Event {
        Event(seq: row["seq"], time: Date(timeIntervalSince1970: row["time"]), kind: EventKind(stored: row["kind"]), agent: row["agent"],
              job: row["job"], fleet: row["fleet"], message: row["message"], detail: decode(EventDetail.self, row["fields"]))
    }
}
