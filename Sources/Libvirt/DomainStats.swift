import CLibvirt
import Foundation

/// One domain's statistics from `virConnectGetAllDomainStats`: libvirt's own names (`cpu.time`,
/// `balloon.current`, `block.0.rd.bytes`, `net.1.tx.bytes`, `state.state`) with their numeric values.
/// Strings (device names, paths) are left out.
public struct DomainStats: Sendable, Equatable {
    public let name: String
    public let values: [String: Double]

    public init(name: String, values: [String: Double]) {
        self.name = name
        self.values = values
    }

    /// The sum of `prefix.N.suffix` over every device N (all disks' read bytes, all interfaces' received bytes).
    public func sum(devices prefix: String, _ suffix: String) -> Double? {
        let matching = values.filter { key, _ in
            key.hasPrefix(prefix + ".") && key.hasSuffix("." + suffix)
                && Int(key.dropFirst(prefix.count + 1).dropLast(suffix.count + 1)) != nil
        }
        return matching.isEmpty ? nil : matching.values.reduce(0, +)
    }
}

extension Connection {
    /// The state, total CPU time, memory balloon, disks and interfaces of every domain, in one call.
    public func allDomainStats() async throws -> [DomainStats] {
        let kinds = VIR_DOMAIN_STATS_STATE.rawValue | VIR_DOMAIN_STATS_CPU_TOTAL.rawValue | VIR_DOMAIN_STATS_BALLOON.rawValue
            | VIR_DOMAIN_STATS_INTERFACE.rawValue | VIR_DOMAIN_STATS_BLOCK.rawValue
        return try await run("read domain statistics of \(uri)") {
            var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>?
            let count = virConnectGetAllDomainStats(self.pointer, UInt32(kinds), &records, 0)
            guard count >= 0 else { return nil }
            guard let records else { return [] }
            defer { virDomainStatsRecordListFree(records) }
            return (0..<Int(count)).compactMap { index in
                guard let record = records[index]?.pointee, let domain = record.dom, let name = virDomainGetName(domain) else { return nil }
                return DomainStats(name: String(cString: name), values: Self.numbers(record.params, count: Int(record.nparams)))
            }
        }
    }

    /// The numeric typed parameters, by field name.
    static func numbers(_ parameters: UnsafeMutablePointer<virTypedParameter>?, count: Int) -> [String: Double] {
        guard let parameters else { return [:] }
        var values: [String: Double] = [:]
        for index in 0..<count {
            var parameter = parameters[index]
            let field = withUnsafeBytes(of: &parameter.field) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            let value: Double
            switch virTypedParameterType(UInt32(parameter.type)) {
            case VIR_TYPED_PARAM_INT: value = Double(parameter.value.i)
            case VIR_TYPED_PARAM_UINT: value = Double(parameter.value.ui)
            case VIR_TYPED_PARAM_LLONG: value = Double(parameter.value.l)
            case VIR_TYPED_PARAM_ULLONG: value = Double(parameter.value.ul)
            case VIR_TYPED_PARAM_DOUBLE: value = parameter.value.d
            case VIR_TYPED_PARAM_BOOLEAN: value = parameter.value.b != 0 ? 1 : 0
            default: continue
            }
            values[field] = value
        }
        return values
    }
}
