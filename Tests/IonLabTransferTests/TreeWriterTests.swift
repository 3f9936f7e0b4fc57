import Crypto
import Foundation
import IonLabAgentProtocol
import IonLabTransfer
import IonLabWire
import NIOCore
import Testing

/// Trees a hostile sender streams (issue 9, item 1): the writer never follows a link, never lets a file
/// root grow children, never keeps setuid bits, and never writes more than announced.
@Suite struct TreeWriterTests {
    /// A scratch directory with a destination inside it and a decoy outside it that must stay untouched.
    final class Scratch {
        let directory: String
        var destination: String { "\(directory)/dest" }
        var decoy: String { "\(directory)/decoy" }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-tree-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: "\(directory)/decoy", withIntermediateDirectories: true)
            chmod(decoy, 0o755)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        var decoyIsUntouched: Bool {
            (try? FileManager.default.contentsOfDirectory(atPath: decoy))?.isEmpty == true && Self.mode(decoy) == 0o755
        }

        static func mode(_ path: String) -> UInt32 {
            var info = stat()
            lstat(path, &info)
            return UInt32(info.st_mode & 0o7777)
        }
    }

    static func entry(_ path: String, _ kind: TreeEntry.Kind, mode: UInt32 = 0o755, size: UInt64 = 0, link: String? = nil) -> StreamItem<AgentStreamMessage> {
        .message(.entry(TreeEntry(path: path, kind: kind, mode: mode, size: size, linkTarget: link)))
    }

    static func file(_ path: String, _ contents: String, mode: UInt32 = 0o644) -> [StreamItem<AgentStreamMessage>] {
        let bytes = Array(contents.utf8)
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        return [entry(path, .file, mode: mode, size: UInt64(bytes.count)), .data(.content, ByteBuffer(bytes: bytes)), .message(.fileEnd(sha256: digest))]
    }

    static let end: StreamItem<AgentStreamMessage> = .message(.treeEnd(TransferSummary()))

    /// Feeds items until one is refused; returns the refusal, or nil if the tree was written.
    func write(_ items: [StreamItem<AgentStreamMessage>], at root: String, directory: Bool = true) -> String? {
        do {
            var writer = try TreeWriter(root: root, expectsDirectory: directory)
            defer { writer.finish() }
            for item in items {
                if case .done = try writer.handle(item) { return nil }
            }
            return "the tree did not end"
        } catch {
            return "\(error)"
        }
    }

    @Test func anOrdinaryTreeIsWrittenWithItsModes() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("bin", .directory, mode: 0o750)] + Self.file("bin/tool", "#!/bin/sh\n", mode: 0o755)
            + [Self.entry("bin/link", .symlink, link: "tool"), Self.entry("ro", .directory, mode: 0o555)] + Self.file("ro/note", "hi") + [Self.end]
        #expect(write(items, at: scratch.destination) == nil)
        #expect(try String(contentsOfFile: "\(scratch.destination)/bin/tool", encoding: .utf8) == "#!/bin/sh\n")
        #expect(Scratch.mode("\(scratch.destination)/bin/tool") == 0o755)
        #expect(Scratch.mode("\(scratch.destination)/bin") == 0o750)
        #expect(Scratch.mode("\(scratch.destination)/ro") == 0o555)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(scratch.destination)/bin/link") == "tool")
    }

    /// The root is a link to a directory outside, and file entries follow: they once landed in the target.
    @Test func aSymlinkRootTakesNoChildren() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .symlink, link: scratch.decoy)] + Self.file("owned", "x") + [Self.end]
        let refusal = write(items, at: scratch.destination, directory: false)
        #expect(refusal?.contains("the root is not a directory, so it has no children") == true, "\(refusal ?? "written")")
        #expect(scratch.decoyIsUntouched)
    }

    @Test func aFileRootTakesNoChildren() throws {
        let scratch = try Scratch()
        let items = Self.file("", "x") + [Self.entry("child", .directory), Self.end]
        #expect(write(items, at: scratch.destination, directory: false)?.contains("has no children") == true)
    }

    /// A link inside the tree, then entries below it: they once followed the link anywhere on the host.
    @Test func entriesBelowALinkAreRefused() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("escape", .symlink, link: scratch.decoy)] + Self.file("escape/owned", "x") + [Self.end]
        #expect(write(items, at: scratch.destination)?.contains("is a symbolic link, which a transfer never follows") == true)
        #expect(scratch.decoyIsUntouched)
    }

    /// A link, then a directory entry of the same name with mode 0777: the final chmod once followed the link
    /// (`/etc` became 0777).
    @Test func aDirectoryEntryOverALinkNeverChangesItsTarget() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("etc", .symlink, link: scratch.decoy), Self.entry("etc", .directory, mode: 0o777), Self.end]
        #expect(write(items, at: scratch.destination)?.contains("is a symbolic link") == true)
        #expect(scratch.decoyIsUntouched)
    }

    /// A link already on disk inside the destination (planted by someone else) is not followed either.
    @Test func anExistingLinkInTheDestinationIsNotFollowed() throws {
        let scratch = try Scratch()
        try FileManager.default.createDirectory(atPath: scratch.destination, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(scratch.destination)/sub", withDestinationPath: scratch.decoy)
        let items = [Self.entry("", .directory), Self.entry("sub", .directory)] + Self.file("sub/owned", "x") + [Self.end]
        #expect(write(items, at: scratch.destination)?.contains("is a symbolic link") == true)
        #expect(scratch.decoyIsUntouched)
    }

    @Test func setuidSetgidAndStickyBitsAreDropped() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("tmp", .directory, mode: 0o1777)] + Self.file("su", "x", mode: 0o6755) + [Self.end]
        #expect(write(items, at: scratch.destination) == nil)
        #expect(Scratch.mode("\(scratch.destination)/su") == 0o755)
        #expect(Scratch.mode("\(scratch.destination)/tmp") == 0o777)
    }

    @Test func moreBytesThanAnnouncedAreRefusedAsTheyArrive() throws {
        let scratch = try Scratch()
        let items: [StreamItem] = [Self.entry("", .directory), Self.entry("big", .file, size: 4),
                                   .data(.content, ByteBuffer(repeating: 1, count: 5))]
        #expect(write(items, at: scratch.destination)?.contains("more bytes than the 4 announced") == true)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.destination)) == [])
    }

    @Test func entriesBeforeTheirDirectoryAreRefused() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory)] + Self.file("a/b", "x") + [Self.end]
        #expect(write(items, at: scratch.destination)?.contains("its directory was not sent first") == true)
    }

    @Test(arguments: ["../up", "/abs", "a/../../b", "a//b", "./a"])
    func pathsThatLeaveTheRootAreRefused(path: String) throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory)] + Self.file(path, "x") + [Self.end]
        #expect(write(items, at: scratch.destination)?.contains("unsafe path") == true)
    }

    /// A `/` followed by a combining mark is one Swift Character that is not "/", but the kernel still splits
    /// the bytes there: such names once passed the checks whole and climbed out of the root.
    @Test(arguments: ["../\u{301}owned", "a/../\u{301}../\u{301}x", "..\u{301}/x/../\u{301}..", "x/\u{301}..\u{301}/\u{301}..\u{301}/y"])
    func combiningMarksAfterASlashDoNotHideIt(path: String) throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("...", .directory), Self.entry("x", .directory)] + Self.file(path, "x") + [Self.end]
        _ = write(items, at: scratch.destination)
        #expect(scratch.decoyIsUntouched)
        let outside = try FileManager.default.contentsOfDirectory(atPath: scratch.directory).sorted()
        #expect(outside == ["decoy", "dest"], "\(outside)")
    }

    @Test func theDecoyAttackWithACombiningMarkIsRefused() throws {
        let scratch = try Scratch()
        let items = [Self.entry("", .directory), Self.entry("../\u{301}decoy", .symlink, link: scratch.decoy),
                     Self.entry(".../\u{301}decoy", .directory)] + Self.file("../\u{301}decoy/\u{301}x", "x") + [Self.end]
        let refusal = write(items, at: scratch.destination)
        #expect(refusal?.contains("unsafe path") == true, "\(refusal ?? "written")")
        #expect(scratch.decoyIsUntouched)
    }

    @Test func aCorruptFileLeavesNothingBehind() throws {
        let scratch = try Scratch()
        let items: [StreamItem] = [Self.entry("", .directory), Self.entry("f", .file, size: 1), .data(.content, ByteBuffer(bytes: [1])),
                                   .message(.fileEnd(sha256: String(repeating: "0", count: 64)))]
        #expect(write(items, at: scratch.destination)?.contains("checksum mismatch") == true)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scratch.destination)) == [])
    }

    @Test func devicesFIFOsAndSocketsAreNeverWrittenTo() throws {
        let scratch = try Scratch()
        let fifo = "\(scratch.directory)/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: TransferError.self) { try TreeReceiver(destination: fifo, sourceName: "x", sourceIsDirectory: false) }
        #expect(throws: TransferError.self) { try TreeReceiver(destination: scratch.directory, sourceName: "..", sourceIsDirectory: true) }
    }
}
