import IonLabAgentProtocol
import IonLabTransfer
import IonLabWire
import NIOCore
import Testing

/// A secret read from a hostile peer into memory: one regular file, within its limit, as announced and with
/// its checksum, or an error that names the problem.
@Suite struct SmallFileReaderTests {
    typealias Items = [StreamItem<AgentStreamMessage>]

    static func read(_ items: Items, limit: Int = 16) throws -> [UInt8]? {
        var reader = SmallFileReader(path: "/etc/secret", limit: limit)
        for item in items {
            if let content = try reader.handle(item) { return content }
        }
        return nil
    }

    @Test func aSmallFileIsReadWhole() throws {
        #expect(try Self.read(TreeWriterTests.file("", "hunter2\n") + [TreeWriterTests.end]) == Array("hunter2\n".utf8))
        #expect(try Self.read(TreeWriterTests.file("", "hunter2\n")) == nil)  // not before the tree ends
    }

    static let hostile: [(Items, String)] = {
        let file = TreeWriterTests.file("", "hunter2\n"), end = TreeWriterTests.end
        var cases: [(Items, String)] = []
        cases.append((TreeWriterTests.file("", String(repeating: "x", count: 17)) + [end], "/etc/secret is 17 bytes long; at most 16 are read"))
        cases.append(([TreeWriterTests.entry("", .file, size: 2), .data(.content, ByteBuffer(string: "abc"))], "more bytes than the 2 announced"))
        cases.append(([TreeWriterTests.entry("", .directory)] + TreeWriterTests.file("inner", "x") + [end], "/etc/secret is not a regular file"))
        cases.append(([TreeWriterTests.entry("", .symlink, link: "/etc/shadow"), end], "/etc/secret is not a regular file"))
        cases.append((file + file + [end], "more than one file"))
        cases.append(([file[0], file[1], .message(.fileEnd(sha256: String(repeating: "0", count: 64))), end], "checksum mismatch"))
        cases.append(([file[0], file[1], end], "the transfer ended before the file did"))
        cases.append(([.data(.content, ByteBuffer(string: "x"))], "file data outside the file"))
        cases.append(([.message(.failure(Failure("cannot read /etc/secret: No such file or directory")))], "No such file or directory"))
        return cases
    }()

    @Test(arguments: hostile)
    func whatAHostilePeerSendsIsRefusedByName(items: Items, expected: String) {
        #expect { _ = try Self.read(items) } throws: { "\($0)".contains(expected) }
    }
}
