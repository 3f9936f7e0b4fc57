import Foundation
import GRDB
import IonLabAgentProtocol
import IonLabConfig
import IonLabSpec
import IonLabWire

/// One workflow step of one fleet VM, as the store keeps it: what lets a second `up` skip finished work.
struct StepRecord: Sendable, Equatable {
    enum State: String, Sendable { case running, done, failed }
    var fleet: String
    var vm: String
    var step: Int
    /// The step's definition, so an edited step is not taken for the one that ran.
    var signature: String
    var name: String
    var state: State
    var job: String?
    var startedAt: Date
    var finishedAt: Date?
    var detail: String?
}

// MARK: - Fleets

extension Store {
    func saveFleet(_ spec: FleetSpec) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO fleets(name, spec, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at
                """, arguments: [spec.name, Self.json(spec), Date().timeIntervalSince1970])
        }
    }

    func fleet(_ name: String) throws -> FleetSpec? {
        try pool.read { db in
            Self.decode(FleetSpec.self, try String.fetchOne(db, sql: "SELECT spec FROM fleets WHERE name = ?", arguments: [name]))
        }
    }

    func fleetNames() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM fleets ORDER BY name") }
    }

    /// Forgets a fleet and its step records (its VMs are destroyed separately).
    func deleteFleet(_ name: String) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM fleet_steps WHERE fleet = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM fleets WHERE name = ?", arguments: [name])
        }
    }

    func stepStarted(_ record: StepRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO fleet_steps(fleet, vm, step, signature, name, state, job, started_at, finished_at, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)
                """, arguments: [record.fleet, record.vm, record.step, record.signature, record.name, record.state.rawValue,
                                 record.job, record.startedAt.timeIntervalSince1970])
        }
    }

    func stepFinished(fleet: String, vm: String, step: Int, state: StepRecord.State, detail: String?) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE fleet_steps SET state = ?, finished_at = ?, detail = ? WHERE fleet = ? AND vm = ? AND step = ?",
                           arguments: [state.rawValue, Date().timeIntervalSince1970, detail, fleet, vm, step])
        }
    }

    func steps(fleet: String, vm: String? = nil) throws -> [StepRecord] {
        try pool.read { db in
            var sql = "SELECT * FROM fleet_steps WHERE fleet = ?"
            var arguments: StatementArguments = [fleet]
            if let vm {
                sql += " AND vm = ?"
                arguments += [vm]
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY vm, step", arguments: arguments).map { row in
                StepRecord(fleet: row["fleet"], vm: row["vm"], step: row["step"], signature: row["signature"], name: row["name"],
                           state: StepRecord.State(rawValue: row["state"]) ?? .failed, job: row["job"],
                           startedAt: Date(timeIntervalSince1970: row["started_at"]),
                           finishedAt: (row["finished_at"] as Double?).map(Date.init(timeIntervalSince1970:)), detail: row["detail"])
            }
        }
    }

    func deleteSteps(fleet: String, vm: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM fleet_steps WHERE fleet = ? AND vm = ?", arguments: [fleet, vm]) }
    }

    /// A finished job's result, if the job is known and over.
    func jobResult(_ id: String) throws -> ExecResult? {
        try pool.read { db in Self.decode(ExecResult.self, try String.fetchOne(db, sql: "SELECT result FROM jobs WHERE id = ?", arguments: [id])) }
    }
}
