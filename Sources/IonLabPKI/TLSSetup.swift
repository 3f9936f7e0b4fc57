import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import IonLabConfig
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// TLS 1.3 configurations for both ends of the agent channel.
///
/// The controller asks every client for a certificate but lets the TLS handshake finish without one,
/// because enrollment happens before an agent has a certificate. Whether a presented certificate is
/// acceptable (our CA, not revoked, a known agent) is decided right after the handshake, where the
/// refusal can be explained to the agent. Agents trust the controller through the CA's SPKI pin.
public enum TLSSetup {
    public static func serverContext(identity: Identity, ca: CertificateAuthority) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try nioCertificate(identity.certificate)), .certificate(try nioCertificate(ca.certificate))],
            privateKey: .privateKey(try nioPrivateKey(identity.privateKey)))
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates([try nioCertificate(ca.certificate)])
        return try NIOSSLContext(configuration: configuration)
    }

    /// The server handler; it accepts any presented chain so the session can judge it after the handshake.
    public static func serverHandler(context: NIOSSLContext) -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: context, customVerificationCallback: { _, promise in
            promise.succeed(.certificateVerified)
        })
    }

    public static func clientContext(identity: Identity?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        if let identity {
            configuration.certificateChain = [.certificate(try nioCertificate(identity.certificate))]
            configuration.privateKey = .privateKey(try nioPrivateKey(identity.privateKey))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client handler; it accepts the server only if its chain contains the pinned CA and the CA signed
    /// the server's certificate.
    public static func clientHandler(context: NIOSSLContext, pin: CAPin) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: nil, customVerificationCallback: { chain, promise in
            promise.succeed(verifyServerChain(chain, pin: pin) == nil ? .certificateVerified : .failed)
        })
    }

    /// Why a server chain is unacceptable, or nil if it is fine.
    public static func verifyServerChain(_ chain: [NIOSSLCertificate], pin: CAPin, now: Date = Date()) -> String? {
        let certificates = chain.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
        guard let leaf = certificates.first else { return "the controller presented no certificate" }
        guard let ca = certificates.first(where: { SPKIPin.of($0) == pin }) else {
            return "the controller's certificate chain does not contain the pinned CA \(pin)"
        }
        guard leaf.issuer == ca.subject, ca.publicKey.isValidSignature(leaf.signature, for: leaf) else {
            return "the controller's certificate is not signed by the pinned CA"
        }
        // The same CA signs agents' certificates: only a server certificate naming the controller will do.
        guard leaf.isControllerCertificate else {
            return "the peer's certificate \(leaf.serialHex) is not the controller's (it must be for server authentication only and name \(CertificateRole.controllerURI)); another machine may be posing as the controller"
        }
        guard now >= leaf.notValidBefore, now <= leaf.notValidAfter else {
            return "the controller's certificate is not valid now"
        }
        return nil
    }

    /// The certificate the peer presented, once the handshake is done.
    public static func peerCertificate(of channel: Channel) -> EventLoopFuture<Certificate?> {
        channel.pipeline.handler(type: NIOSSLHandler.self).flatMapThrowing { handler in
            guard let certificate = handler.peerCertificate else { return nil }
            return try Certificate(derEncoded: certificate.toDERBytes())
        }
    }

    /// The CA certificate in the peer's chain that matches the pin.
    public static func pinnedCertificate(in chain: [NIOSSLCertificate], pin: CAPin) -> Certificate? {
        chain.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }.first { SPKIPin.of($0) == pin }
    }

    static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: Array(certificate.serializeAsPEM().pemString.utf8), format: .pem)
    }

    static func nioPrivateKey(_ key: P256.Signing.PrivateKey) throws -> NIOSSLPrivateKey {
        try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
    }
}

/// Completes a promise when the TLS handshake finishes, or fails it with the reason it did not.
public final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<Void>

    public init(promise: EventLoopPromise<Void>) { self.promise = promise }

    public var done: EventLoopFuture<Void> { promise.futureResult }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            promise.succeed(())
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        // After success this is a no-op; otherwise the channel closed before a handshake started.
        promise.fail(ChannelError.ioOnClosedChannel)
    }
}
