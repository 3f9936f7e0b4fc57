import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The parts of libvirt's capabilities XML that discovery needs.
struct Capabilities {
    let document: XMLDocument

    init(xml: String) throws {
        document = try XMLDocument(xmlString: xml)
    }

    var hostArch: String? { try? document.nodes(forXPath: "/capabilities/host/cpu/arch").first?.stringValue }

    /// The domain types offered for guests of `arch` (for example "qemu" and "kvm").
    func domainTypes(arch: String) -> [String] {
        let nodes = (try? document.nodes(forXPath: "/capabilities/guest[arch/@name='\(arch)']/arch/domain/@type")) ?? []
        var seen: [String] = []
        for type in nodes.compactMap(\.stringValue) where !seen.contains(type) { seen.append(type) }
        return seen
    }
}
