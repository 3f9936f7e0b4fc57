import Foundation
import GRDB
import IonLabAdminAPI

// MARK: - Port forwards

extension Store {
    struct KeptForward: Sendable {
        var rule: ForwardRule
        var owner: ForwardOwner
    }

    /// Keeps a forward, replacing one with the same key.
    func saveForward(_ rule: ForwardRule, owner: ForwardOwner) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO forwards(key, agent, rule, owner) VALUES (?, ?, ?, ?)",
                           arguments: [Self.json(rule.key), rule.agent, Self.json(rule), Self.json(owner)])
        }
    }

    func deleteForward(_ key: ForwardRule.Key) throws {
        try pool.write { db in try db.execute(sql: "DELETE FROM forwards WHERE key = ?", arguments: [Self.json(key)]) }
    }

    func keptForwards() throws -> [KeptForward] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT rule, owner FROM forwards ORDER BY key").compactMap { row in
                guard let rule = Self.decode(ForwardRule.self, row["rule"]), let owner = Self.decode(ForwardOwner.self, row["owner"]) else {
                    return nil
                }
                return KeptForward(rule: rule, owner: owner)
            }
        }
    }
}
