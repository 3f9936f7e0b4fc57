import Foundation
import GRDB
import IonLabAdminAPI
import IonLabWire

// MARK: - VMs

extension Store {
    /// Claims a VM name: fails when a VM of that name exists (provisioning or ready); a failed provision deletes its row.
    func insertVM(_ record: VMRecord) throws {
        try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM vms WHERE name = ?", arguments: [record.name]) == true {
                throw ControllerError("a VM named '\(record.name)' exists already (ionlab vm destroy \(record.name) first)")
            }
            try db.execute(sql: "INSERT INTO vms(name, state, record, updated_at) VALUES (?, ?, ?, ?)",
                           arguments: [record.name, record.state.rawValue, Self.json(record), Date().timeIntervalSince1970])
        }
    }

    func updateVM(_ record: VMRecord) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE vms SET state = ?, record = ?, updated_at = ? WHERE name = ?",
                           arguments: [record.state.rawValue, Self.json(record), Date().timeIntervalSince1970, record.name])
        }
    }

    /// Adds facts a step learned about a VM (replacing those of the same names), in one transaction: the
    /// boot follower may be updating the same record.
    func recordFacts(_ facts: [String: String], vm name: String) throws {
        try pool.write { db in
            guard var record = Self.decode(VMRecord.self, try String.fetchOne(db, sql: "SELECT record FROM vms WHERE name = ?", arguments: [name])) else {
                return
            }
            record.facts.merge(facts) { _, new in new }
            try db.execute(sql: "UPDATE vms SET record = ?, updated_at = ? WHERE name = ?",
                           arguments: [Self.json(record), Date().timeIntervalSince1970, name])
        }
    }

    func vm(_ name: String) throws -> VMRecord? {
        try pool.read { db in
            Self.decode(VMRecord.self, try String.fetchOne(db, sql: "SELECT record FROM vms WHERE name = ?", arguments: [name]))
        }
    }

    func vms() throws -> [VMRecord] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT record FROM vms ORDER BY name").compactMap { Self.decode(VMRecord.self, $0) }
        }
    }

    func deleteVM(_ name: String) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM vms WHERE name = ?", arguments: [name]) }
    }
}
