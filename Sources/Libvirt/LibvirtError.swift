import CLibvirt

/// An error reported by libvirt: its error number and message, the call that failed, and a coarse kind.
public struct LibvirtError: Error, Sendable, CustomStringConvertible {
    /// What callers usually need to decide, mapped from libvirt's error number.
    public enum Kind: String, Sendable {
        case notFound, alreadyExists, invalidState, unsupported, connectionFailed, invalidConfig, timedOut, failed
    }

    /// libvirt's `virErrorNumber` (for example 42, `VIR_ERR_NO_DOMAIN`).
    public let code: Int32
    /// libvirt's `virErrorDomain`: which part of libvirt raised it.
    public let domain: Int32
    public let message: String
    /// The operation that failed, in our words ("define domain vm1").
    public let operation: String

    public var kind: Kind { Self.kind(of: code) }

    public var description: String { "\(operation): \(message) (libvirt error \(code))" }

    public init(code: Int32, domain: Int32 = 0, message: String, operation: String) {
        self.code = code
        self.domain = domain
        self.message = message
        self.operation = operation
    }

    /// The calling thread's last libvirt error, or a generic one when libvirt set none.
    static func last(_ operation: String) -> LibvirtError {
        guard let error = virGetLastError() else {
            return LibvirtError(code: Int32(VIR_ERR_INTERNAL_ERROR.rawValue), message: "unknown libvirt failure", operation: operation)
        }
        let message = error.pointee.message.map { String(cString: $0) } ?? "no message"
        return LibvirtError(code: error.pointee.code, domain: error.pointee.domain, message: message, operation: operation)
    }

    static func kind(of code: Int32) -> Kind {
        switch virErrorNumber(rawValue: UInt32(bitPattern: code)) {
        case VIR_ERR_NO_DOMAIN, VIR_ERR_NO_STORAGE_POOL, VIR_ERR_NO_STORAGE_VOL, VIR_ERR_NO_NETWORK, VIR_ERR_NO_DOMAIN_METADATA:
            return .notFound
        case VIR_ERR_DOM_EXIST, VIR_ERR_STORAGE_VOL_EXIST, VIR_ERR_STORAGE_POOL_BUILT:
            return .alreadyExists
        case VIR_ERR_OPERATION_INVALID:
            return .invalidState
        case VIR_ERR_NO_SUPPORT, VIR_ERR_OPERATION_UNSUPPORTED:
            return .unsupported
        case VIR_ERR_NO_CONNECT, VIR_ERR_AUTH_FAILED, VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC:
            return .connectionFailed
        case VIR_ERR_XML_ERROR, VIR_ERR_XML_DETAIL, VIR_ERR_INVALID_ARG, VIR_ERR_CONFIG_UNSUPPORTED:
            return .invalidConfig
        case VIR_ERR_OPERATION_TIMEOUT:
            return .timedOut
        default:
            return .failed
        }
    }
}
