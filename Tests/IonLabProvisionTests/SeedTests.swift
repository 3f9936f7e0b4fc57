import Foundation
@testable import IonLabProvision
import Testing

/// Seeds are read back with genisoimage's isoinfo, a different implementation from the writer (xorriso).
@Suite struct SeedTests {
    func isoinfo(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/isoinfo")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func theISOHasTheCidataLabelAndEveryFile() throws {
        let binary = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let seed = Seed(files: [
            SeedFile(name: "user-data", text: "#cloud-config\nruncmd: []\n"),
            SeedFile(name: "meta-data", text: Seed.metaData(instanceID: "vm1-0001", hostname: "vm1")),
            SeedFile(name: "agent.json", text: "name: vm1\n"),
            SeedFile(name: "ionlab-agent", contents: binary, executable: true),
        ])
        let iso = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(UUID().uuidString).iso")
        defer { try? FileManager.default.removeItem(at: iso) }
        try seed.buildISO().write(to: iso)
        let header = try isoinfo(["-d", "-i", iso.path])
        #expect(header.contains("Volume id: cidata"))
        let listing = try isoinfo(["-R", "-l", "-i", iso.path])
        for name in ["user-data", "meta-data", "agent.json", "ionlab-agent"] { #expect(listing.contains(" \(name)"), "\(name) missing") }
        // The seed carries the enrollment token: every file is its owner's only, and the binary stays executable.
        #expect(listing.contains("-rwx------"), "\(listing)")
        #expect(!listing.contains("r--r--") && !listing.contains("r-xr-x"), "\(listing)")
        #expect(try isoinfo(["-R", "-x", "/meta-data", "-i", iso.path]) == "instance-id: vm1-0001\nlocal-hostname: vm1\n")
        let extracted = iso.deletingPathExtension().appendingPathExtension("bin")
        defer { try? FileManager.default.removeItem(at: extracted) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/isoinfo")
        process.arguments = ["-R", "-x", "/ionlab-agent", "-i", iso.path]
        _ = FileManager.default.createFile(atPath: extracted.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: extracted)
        try process.run()
        process.waitUntilExit()
        #expect(try Data(contentsOf: extracted) == binary)
    }

    /// Issue 9, item 3: the token was once world-readable under /tmp while the ISO was written.
    @Test func seedFilesAreWrittenForTheirOwnerOnly() throws {
        let work = try PrivateDirectory(prefix: "ionlab-seed-test-")
        defer { work.remove() }
        let seed = Seed(files: [SeedFile(name: "agent.json", text: "token: secret\n"),
                                SeedFile(name: "ionlab-agent", contents: Data([1, 2, 3]), executable: true)])
        let tree = try seed.writeTree(in: work.path)
        func mode(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1 }
        #expect(mode(work.path) == 0o700)
        #expect(mode(tree) == 0o700)
        #expect(mode("\(tree)/agent.json") == 0o600)
        #expect(mode("\(tree)/ionlab-agent") == 0o700)
        #expect(VolumeXML.raw(name: "vm1-seed.iso", capacityBytes: 1).contains("<mode>0600</mode>"))
    }

    @Test func theContentHashChangesWithAnyFile() {
        let a = Seed(files: [SeedFile(name: "meta-data", text: "instance-id: a\n")])
        let b = Seed(files: [SeedFile(name: "meta-data", text: "instance-id: b\n")])
        #expect(a.contentHash != b.contentHash)
        #expect(a.contentHash == Seed(files: [SeedFile(name: "meta-data", text: "instance-id: a\n")]).contentHash)
        #expect(a.contentHash.count == 64)
    }

    @Test func aMissingBundleFileIsNamed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bundle-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        FileManager.default.createFile(atPath: "\(directory)/ionlab-agent", contents: Data())
        let error = #expect(throws: ProvisionError.self) { try AgentBundle(directory: directory) }
        #expect(error?.description.contains("lacks ionlab-agent.service") == true)
    }
}
