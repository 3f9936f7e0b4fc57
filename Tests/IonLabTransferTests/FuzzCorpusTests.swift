import Foundation
import IonLabFuzz
import Testing

/// The fuzz corpus (`Tests/FuzzCorpus`: the seeds, and every input a fuzzing run kept) replayed through the
/// fuzz targets on every test run, so what the fuzzer found stays fixed. A crash or a broken invariant stops
/// the test process.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    @Test(arguments: FuzzTarget.allCases)
    func theCorpusReplaysCleanly(target: FuzzTarget) throws {
        let directory = Self.corpus.appendingPathComponent(target.rawValue).path
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(files.count >= 5, "the \(target.rawValue) corpus is missing its seeds")
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: "\(directory)/\(file)"))
            target.run(Array(data))
        }
    }

    /// The seeds in the repo are the ones the code describes (`ionlab-fuzz seeds` writes them).
    @Test(arguments: FuzzTarget.allCases)
    func theSeedsAreInTheCorpus(target: FuzzTarget) throws {
        for (name, bytes) in try FuzzSeeds.all(for: target) where name != "nested" && name != "huge-uptime" {
            let path = Self.corpus.appendingPathComponent(target.rawValue).appendingPathComponent(name).path
            let stored = try #require(FileManager.default.contents(atPath: path), "\(path) is missing: run ionlab-fuzz seeds Tests/FuzzCorpus")
            #expect(stored.count == bytes.count, "\(target.rawValue)/\(name) differs from FuzzSeeds")
        }
    }
}
