import Foundation

/// A VM snapshot's XML, written and read: the snapshot takes the system disk (internally, in its qcow2, with
/// the memory when the domain runs) and leaves out the read-only seed.
public enum SnapshotSpec {
    public static func xml(name: String, description: String?, systemDisk: String = "vda", seedDisk: String = "vdb") -> String {
        let e = XMLText.escape
        return """
        <domainsnapshot>
          <name>\(e(name))</name>
        \(description.map { "  <description>\(e($0))</description>\n" } ?? "")  <disks>
            <disk name='\(e(systemDisk))' snapshot='internal'/>
            <disk name='\(e(seedDisk))' snapshot='no'/>
          </disks>
        </domainsnapshot>
        """
    }

    /// What a snapshot's XML says of it.
    public struct Summary: Sendable, Equatable {
        public var created: Date?
        /// The domain's state when it was taken: `running` snapshots hold memory too.
        public var domainState: String?
        public var description: String?
        public var hasMemory: Bool
        /// The snapshot taken before it (libvirt keeps them as a tree).
        public var parent: String?
    }

    /// Reads the few fields ionlab shows; the XML is libvirt's own.
    public static func summary(of xml: String) -> Summary {
        let created = element("creationTime", in: xml).flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
        let memory = xml.range(of: "<memory snapshot='(internal|external)'", options: .regularExpression) != nil
        let parent = element("parent", in: xml).flatMap { element("name", in: $0) }.map(XMLText.unescape)
        return Summary(created: created, domainState: element("state", in: xml), description: element("description", in: xml).map(XMLText.unescape),
                       hasMemory: memory, parent: parent)
    }

    /// The text of the first `<name>…</name>` at the top of the snapshot (before its `<domain>` copy).
    private static func element(_ name: String, in xml: String) -> String? {
        let top = xml.range(of: "<domain ").map { String(xml[..<$0.lowerBound]) } ?? xml
        guard let open = top.range(of: "<\(name)>"), let close = top.range(of: "</\(name)>", range: open.upperBound..<top.endIndex) else {
            return nil
        }
        return String(top[open.upperBound..<close.lowerBound])
    }

}
