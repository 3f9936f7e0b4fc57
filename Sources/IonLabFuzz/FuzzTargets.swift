import Foundation
import IonLabAgentProtocol
import IonLabTransfer
import IonLabWire
import NIOCore

/// The fuzz targets: each takes any bytes, must not crash, and checks the invariants that make a hostile
/// peer harmless. libFuzzer drives them (`scripts/fuzz.sh`); the tests replay the corpus through them.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Bytes off the wire into frames (at both size limits), their messages, and a multiplexed connection at
    /// either end of the agent channel.
    case frames
    /// One frame payload into a message of each vocabulary of the agent channel, with its field checks, and back.
    case messages
    /// A tree a peer streams, written by ``TreeWriter`` into a scratch directory beside a decoy.
    case tree

    public func run(_ data: [UInt8]) {
        switch self {
        case .frames: Self.frames(data)
        case .messages: Self.messages(data)
        case .tree: Self.tree(data)
        }
    }

    /// Stops the process with a message: libFuzzer records the input as a crash.
    static func violated(_ invariant: String) -> Never {
        fatalError("fuzz invariant violated: \(invariant)")
    }

    // MARK: frames

    static func frames(_ data: [UInt8]) {
        frames(data, as: AgentRole.self, side: .client)
        frames(data, as: ControllerRole.self, side: .controller)
    }

    /// The frames as one end of the agent channel receives them: the agent's end accepts the streams the
    /// controller opens (even ids); the controller's end accepts none.
    static func frames<Role: WireRole>(_ data: [UInt8], as role: Role.Type, side: MuxConnection<Role>.Side) {
        for limit in [Frame.unauthenticatedMaxPayload, Frame.maxPayload] {
            var buffer = ByteBuffer(bytes: data)
            let (writer, _) = NIOAsyncChannelOutboundWriter<Frame>.makeTestingWriter()
            let mux = MuxConnection<Role>(writer: writer, side: side)
            var opened: [MuxConnection<Role>.Stream] = []
            defer {
                mux.fail(WireError.connectionClosed)
                writer.finish()
            }
            while true {
                let frame: Frame
                do {
                    guard let next = try FrameDecoder.next(from: &buffer, maxPayload: limit) else { break }
                    frame = next
                } catch {
                    break
                }
                if frame.payload.readableBytes > limit { violated("a frame of \(frame.payload.readableBytes) bytes passed a limit of \(limit)") }
                do {
                    if case .opened(let stream, _) = try mux.route(frame) { opened.append(stream) }
                } catch {
                    break
                }
                if mux.rememberedPeerIDs > Int(PeerStreamIDs.maximumPassedOver) { violated("\(mux.rememberedPeerIDs) passed-over ids remembered") }
                for stream in opened where stream.queuedCount > FlowControl.initialWindow / FlowControl.frameOverhead {
                    violated("stream \(stream.id) queues \(stream.queuedCount) items")
                }
            }
        }
    }

    // MARK: messages

    static func messages(_ data: [UInt8]) {
        roundTrip(data, as: AgentControl.self)
        roundTrip(data, as: ControllerControl.self)
        roundTrip(data, as: AgentRequest.self)
        roundTrip(data, as: AgentStreamMessage.self)
    }

    /// What decodes (and so passed its checks) encodes again, and decodes to the same thing.
    static func roundTrip<Message: WireMessage>(_ data: [UInt8], as type: Message.Type) {
        guard let message = try? MessageCoding.decode(ByteBuffer(bytes: data), as: type) else { return }
        guard let again = try? MessageCoding.encode(message) else { return }  // it may exceed a frame once re-encoded
        guard let back = try? MessageCoding.decode(again, as: type) else { violated("\(message.name) decoded, encoded, then failed to decode") }
        if back.name != message.name { violated("\(message.name) came back as \(back.name)") }
    }

    // MARK: tree

    /// The input is a run of frames: message frames carry tree messages, data frames file bytes. The first
    /// byte says whether the root is announced as a directory.
    static func tree(_ data: [UInt8]) {
        guard let first = data.first else { return }
        guard let scratch = try? Scratch() else { violated("cannot make a scratch directory") }
        defer { scratch.remove() }
        var buffer = ByteBuffer(bytes: data.dropFirst())
        guard var writer = try? TreeWriter(root: scratch.root, expectsDirectory: first & 1 == 1) else { violated("cannot open the scratch root") }
        defer { writer.finish() }
        while let frame = try? FrameDecoder.next(from: &buffer) {
            var payload = frame.payload
            let item: StreamItem<AgentStreamMessage>
            switch frame.kind {
            case .message:
                guard let message = try? MessageCoding.decode(payload, as: AgentStreamMessage.self) else { return }
                item = .message(message)
            case .data:
                guard let raw = payload.readInteger(as: UInt8.self), let channel = DataChannel(rawValue: raw) else { return }
                item = .data(channel, payload)
            case .window, .reset:
                continue
            }
            do {
                if case .done = try writer.handle(item) { break }
            } catch {
                break
            }
        }
        scratch.checkInvariants()
    }

    /// `DIR/root` receives the tree; `DIR/decoy` must stay empty (seeds aim links at `../decoy`).
    struct Scratch {
        let directory: String
        var root: String { "\(directory)/root" }
        var decoy: String { "\(directory)/decoy" }

        init() throws {
            var template = Array((NSTemporaryDirectory() + "/ionlab-fuzz-XXXXXX").utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw CocoaError(.fileWriteUnknown) }
            directory = String(cString: made)
            guard mkdir("\(directory)/decoy", 0o755) == 0 else { throw CocoaError(.fileWriteUnknown) }
        }

        func checkInvariants() {
            if let inside = try? FileManager.default.contentsOfDirectory(atPath: decoy), !inside.isEmpty {
                FuzzTarget.violated("the transfer wrote \(inside) into the decoy beside its root")
            }
            var info = stat()
            if lstat(decoy, &info) != 0 || info.st_mode & 0o7777 != 0o755 { FuzzTarget.violated("the decoy's mode changed") }
            guard let walker = FileManager.default.enumerator(atPath: directory) else { return }
            for case let path as String in walker where lstat("\(directory)/\(path)", &info) == 0 {
                if info.st_mode & 0o7000 != 0 { FuzzTarget.violated("\(path) has mode \(String(info.st_mode & 0o7777, radix: 8))") }
                let kind = info.st_mode & S_IFMT
                if kind != S_IFREG, kind != S_IFDIR, kind != S_IFLNK { FuzzTarget.violated("\(path) is a special file") }
            }
        }

        func remove() {
            // Modes may forbid entry (a 0 mode directory): give the owner access back first.
            if let walker = FileManager.default.enumerator(atPath: directory) {
                for case let path as String in walker { chmod("\(directory)/\(path)", 0o700) }
            }
            chmod(directory, 0o700)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
