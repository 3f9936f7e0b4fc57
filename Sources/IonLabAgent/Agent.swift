import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabAgentProtocol
import IonLabConfig
import IonLabPKI
import IonLabTransfer
import IonLabWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// The in-VM agent: enrolls once, then keeps one mutual-TLS connection to the controller, reconnecting
/// with jittered backoff, and serves the controller's requests.
public final class Agent: @unchecked Sendable {
    public static let version = "0.1.0"

    let config: AgentConfig
    let state: AgentState
    let group: EventLoopGroup
    let logger: Logger
    let jobs: JobManager
    let forwards: ForwardHandler
    let instanceIDFile: String
    private let connector: AgentConnector

    public init(config: AgentConfig, stateDirectory: String, group: EventLoopGroup, logger: Logger,
                instanceIDFile: String = HealthProbe.cloudInitInstanceID) throws {
        self.config = config
        self.instanceIDFile = instanceIDFile
        self.state = try AgentState(directory: stateDirectory)
        self.group = group
        self.logger = logger
        self.jobs = JobManager(directory: state.jobsDirectory, group: group)
        self.forwards = ForwardHandler(group: group)
        self.connector = AgentConnector(endpoints: config.endpoints, pin: config.caPin, group: group)
    }

    /// Runs until a terminal condition, which it throws as ``AgentStop``.
    public func run() async throws {
        var backoff = Backoff(initial: config.reconnectInitialSeconds, maximum: config.reconnectMaxSeconds)
        while true {
            do {
                var identity = try state.identity()
                if identity == nil {
                    identity = try await enroll()
                }
                try await session(identity: identity!) { backoff.reset() }
            } catch let stop as AgentStop {
                throw stop
            } catch let refusal as Refusal where refusal.isTerminal {
                throw AgentStop(message: "controller refused this agent: \(refusal.message)")
            } catch let error as PKIError {
                throw AgentStop(message: error.message)
            } catch {
                let delay = backoff.next()
                logger.warning("connection failed, retrying in \(delay.oneDecimal)s: \(Self.describe(error))")
                try await Task.sleep(for: .clamped(seconds: delay))
            }
        }
    }

    static func describe(_ error: Error) -> String {
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return "the controller closed the connection" }
        return "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    // MARK: Enrollment

    /// Trades the one-time token and a CSR for a client certificate. The private key stays here.
    private func enroll() async throws -> Identity {
        guard let token = config.token else {
            throw AgentStop(message: "not enrolled and the config has no token: create one with `ionlab token create \(config.name)`")
        }
        let key = try state.enrollmentKey()
        let csrPEM = try AgentKeys.csr(for: key, name: config.name)
        let channel = try await connector.connect(identity: nil)
        let response: EnrollResponse = try await channel.executeThenClose { inbound, outbound in
            try await MuxConnection<AgentRole>(writer: outbound, side: .client).enroll(
                Hello(role: .agent, software: "ionlab-agent \(Self.version)", bootID: HealthProbe.bootID()),
                EnrollRequest(name: config.name, token: token, csrPEM: csrPEM), frames: inbound)
        }
        guard let identity = Identity(certificatePEM: response.certificatePEM, key: key) else {
            throw AgentStop(message: "the controller returned an unreadable certificate, or one for another key")
        }
        try state.save(identity, caPEM: response.caPEM)
        logger.notice("enrolled as \(config.name); certificate \(identity.certificate.serialHex) valid until \(identity.certificate.notValidAfter)")
        return identity
    }

    // MARK: Session

    private func session(identity: Identity, onEstablished: () -> Void) async throws {
        let channel = try await connector.connect(identity: identity)
        try await channel.executeThenClose { inbound, outbound in
            let mux = MuxConnection<AgentRole>(writer: outbound, side: .client)
            defer { mux.fail(WireError.connectionClosed) }
            let known = await jobs.knownIDs
            var frames = inbound.makeAsyncIterator()
            // More jobs than a hello may list: list none, and the controller marks none lost.
            let greeting = try await mux.greet(Hello(role: .agent, software: "ionlab-agent \(Self.version)", bootID: HealthProbe.bootID(),
                                                     runningJobs: known.count <= PeerLimits.jobsPerMessage ? known : nil,
                                                     ageSeconds: HealthProbe.processAgeSeconds()), frames: &frames)
            if case .renewalRequired(let reason) = greeting {
                try await recover(mux: mux, frames: &frames, reason: reason)
                return
            }
            onEstablished()
            logger.notice("connected to the controller as \(config.name)")
            // Request handlers are not awaited when the connection ends: their jobs live on in the job
            // manager, and a reconnect must not wait for them.
            let handlers = TaskSet()
            let heartbeats = Task { try await self.heartbeats(mux: mux, identity: identity) }
            defer {
                heartbeats.cancel()
                handlers.cancelAll()
            }
            while let frame = try await frames.next() {
                switch try mux.route(frame) {
                case .control(let message):
                    try await handleControl(message)
                case .opened(let stream, let request):
                    handlers.run(id: stream.id) { await self.serve(request, on: stream) }
                case .delivered:
                    break
                }
            }
            throw WireError.connectionClosed
        }
    }

    private func handleControl(_ message: ControllerControl) async throws {
        switch message {
        case .jobReportsAck(let ids):
            await jobs.acknowledge(ids)
        case .renewed(let certificatePEM):
            try renewed(certificatePEM)
        case .refused(let refusal):
            throw refusal
        case .welcome, .enrolled, .renewalRequired:
            throw WireError.unexpected("\(message.name) after the connection was welcomed")
        }
    }

    /// Every interval: a heartbeat, unacknowledged job results, and a renewal request when due.
    private func heartbeats(mux: MuxConnection<AgentRole>, identity: Identity) async throws {
        var renewalRequested = false
        while true {
            try await mux.sendControl(.heartbeat(HealthProbe.read(agentVersion: Self.version, instanceIDFile: instanceIDFile)))
            for batch in ReportBatches.split(await jobs.unacknowledged) { try await mux.sendControl(.jobReports(batch)) }
            if !renewalRequested, Renewal.isDue(identity.certificate) {
                let (key, csrPEM) = try AgentKeys.makeKeyAndCSR(name: config.name)
                pendingRenewalKey.withLockedValue { $0 = key }
                try await mux.sendControl(.renew(csrPEM: csrPEM))
                renewalRequested = true
            }
            try await Task.sleep(for: .clamped(seconds: config.heartbeatSeconds))
        }
    }

    private let pendingRenewalKey = NIOLockedValueBox<P256.Signing.PrivateKey?>(nil)

    /// The certificate expired while this agent was away (the controller was down, the VM suspended): the
    /// controller lets it trade the old certificate, whose key the TLS handshake proved, for a new one with a
    /// new key. The next connection uses it.
    private func recover(mux: MuxConnection<AgentRole>, frames: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator, reason: String) async throws {
        logger.notice("the controller asks for a new certificate: \(reason)")
        let key = try state.recoveryKey()
        let csrPEM = try AgentKeys.csr(for: key, name: config.name)
        let certificatePEM = try await mux.renew(csrPEM: csrPEM, frames: &frames)
        guard let identity = Identity(certificatePEM: certificatePEM, key: key) else {
            throw AgentStop(message: "the controller returned a renewed certificate for another key")
        }
        try state.save(identity, caPEM: nil)
        logger.notice("certificate renewed after it expired: \(identity.certificate.serialHex), valid until \(identity.certificate.notValidAfter); reconnecting")
    }

    private func renewed(_ certificatePEM: String) throws {
        guard let key = pendingRenewalKey.withLockedValue({ $0 }), let identity = Identity(certificatePEM: certificatePEM, key: key) else {
            logger.warning("ignoring a renewed certificate that does not match the requested key")
            return
        }
        try state.save(identity, caPEM: nil)
        pendingRenewalKey.withLockedValue { $0 = nil }
        logger.notice("certificate renewed: \(identity.certificate.serialHex), valid until \(identity.certificate.notValidAfter); used from the next connection")
    }

    // MARK: Requests

    private func serve(_ request: AgentRequest, on stream: AgentStream) async {
        defer { stream.close() }
        do {
            switch request {
            case .exec(let spec):
                try spec.check()
                try await ExecHandler(jobs: jobs).serve(spec, on: stream)
            case .put(let request):
                let receiver = try TreeReceiver(destination: request.destination, sourceName: request.sourceName,
                                                sourceIsDirectory: request.sourceIsDirectory)
                try await stream.send(.putReady(path: receiver.root))
                _ = try await receiver.receive(from: stream)
            case .get(let request):
                let sender = TreeSender(source: request.source, recursive: request.recursive)
                _ = try sender.validate()
                _ = try await sender.send(on: stream)
            case .connect(let endpoint):
                try await forwards.connect(to: endpoint, on: stream)
            case .listen(let endpoint):
                try await forwards.listen(on: endpoint, stream: stream)
            case .attach(let id):
                try await forwards.attach(id, on: stream)
            }
        } catch let error as TransferError {
            try? await stream.send(.failure(Failure(error.message)))
        } catch let failure as Failure {
            try? await stream.send(.failure(failure))
        } catch is CancellationError {
            return
        } catch WireError.streamReset(let id) {
            logger.debug("request \(request.name) on stream \(id) ended: the controller abandoned it")
        } catch {
            try? await stream.send(.failure(Failure("\(error)")))
        }
    }
}

/// Job results go to the controller in batches a message can hold, however many an outage piled up.
enum ReportBatches {
    static let maximumCount = 64
    static let maximumBytes = 256 << 10

    static func split(_ results: [ExecResult]) -> [[ExecResult]] {
        var batches: [[ExecResult]] = []
        var batch: [ExecResult] = []
        var bytes = 0
        for result in results {
            let size = result.outputTail.utf8.count + (result.error?.utf8.count ?? 0) + 256
            if !batch.isEmpty, batch.count == maximumCount || bytes + size > maximumBytes {
                batches.append(batch)
                batch = []
                bytes = 0
            }
            batch.append(result)
            bytes += size
        }
        if !batch.isEmpty { batches.append(batch) }
        return batches
    }
}
