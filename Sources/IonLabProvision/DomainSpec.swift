import IonLabConfig
import IonLabControllerConfig

/// Everything that goes into one VM's libvirt domain, and the XML made from it.
public struct DomainSpec: Sendable, Equatable {
    public var name: String
    public var uuid: String
    /// The cloud-init instance id of this provision; it changes on every re-provision.
    public var instanceID: String
    /// `qemu` (TCG), `kvm`, or `test` on the test driver.
    public var domainType: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskPath: String
    public var seedPath: String
    public var kernel: String?
    public var initrd: String?
    public var cmdline: String?
    public var network: GuestNetwork
    /// Where the serial console is logged on the backend host.
    public var consoleLog: String
    /// The graphical console's VNC password (VNC takes at most 8 characters). The console listens on a
    /// UNIX socket that libvirt places in the domain's private directory, never on a network address.
    public var displayPassword: String

    /// A fresh VNC password: 8 characters from a 62-letter alphabet.
    public static func newDisplayPassword() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    /// The namespace of ionlab's `<metadata>` element in domain XML.
    public static let metadataNamespace = "https://ionlab.dev/xmlns/vm/1"

    public var xml: String {
        let e = XMLText.escape
        var os = ["    <type arch='x86_64' machine='pc'>hvm</type>"]
        if let kernel {
            os.append("    <kernel>\(e(kernel))</kernel>")
            if let initrd { os.append("    <initrd>\(e(initrd))</initrd>") }
            if let cmdline { os.append("    <cmdline>\(e(cmdline))</cmdline>") }
        } else {
            os.append("    <boot dev='hd'/>")
        }
        let interface: String = switch network {
        case .user: "    <interface type='user'>\n      <model type='virtio'/>\n    </interface>"
        case .network(let name): "    <interface type='network'>\n      <source network='\(e(name))'/>\n      <model type='virtio'/>\n    </interface>"
        }
        return """
        <domain type='\(e(domainType))'>
          <name>\(e(name))</name>
          <uuid>\(e(uuid))</uuid>
          <metadata>
            <ionlab:vm xmlns:ionlab='\(Self.metadataNamespace)'>
              <ionlab:instance>\(e(instanceID))</ionlab:instance>
            </ionlab:vm>
          </metadata>
          <memory unit='MiB'>\(memoryMiB)</memory>
          <vcpu>\(cpus)</vcpu>
          <os>
        \(os.joined(separator: "\n"))
          </os>
          <features>
            <acpi/>
          </features>
          <clock offset='utc'/>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='\(e(diskPath))'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='file' device='disk'>
              <driver name='qemu' type='raw'/>
              <source file='\(e(seedPath))'/>
              <target dev='vdb' bus='virtio'/>
              <readonly/>
            </disk>
        \(interface)
            <serial type='pty'>
              <log file='\(e(consoleLog))' append='off'/>
              <target port='0'/>
            </serial>
            <console type='pty'>
              <target type='serial' port='0'/>
            </console>
            <graphics type='vnc' passwd='\(e(displayPassword))'>
              <listen type='socket'/>
            </graphics>
            <video>
              <model type='virtio' heads='1' primary='yes'/>
            </video>
            <rng model='virtio'>
              <backend model='random'>/dev/urandom</backend>
            </rng>
          </devices>
        </domain>
        """
    }
}

/// The XML for the volumes of a VM.
public enum VolumeXML {
    /// A qcow2 overlay whose backing store is the base image (absolute path and format set).
    public static func overlay(name: String, capacityBytes: UInt64, backingPath: String, backingFormat: String) -> String {
        let e = XMLText.escape
        return """
        <volume type='file'>
          <name>\(e(name))</name>
          <capacity unit='bytes'>\(capacityBytes)</capacity>
          <target>
            <format type='qcow2'/>
          </target>
          <backingStore>
            <path>\(e(backingPath))</path>
            <format type='\(e(backingFormat))'/>
          </backingStore>
        </volume>
        """
    }

    /// A raw volume for the seed ISO.
    /// A raw volume readable by its owner only (the seed carries the enrollment token).
    public static func raw(name: String, capacityBytes: UInt64) -> String {
        """
        <volume type='file'>
          <name>\(XMLText.escape(name))</name>
          <capacity unit='bytes'>\(capacityBytes)</capacity>
          <target>
            <format type='raw'/>
            <permissions><mode>0600</mode></permissions>
          </target>
        </volume>
        """
    }

    /// A directory pool.
    public static func directoryPool(name: String, path: String) -> String {
        """
        <pool type='dir'>
          <name>\(XMLText.escape(name))</name>
          <target>
            <path>\(XMLText.escape(path))</path>
          </target>
        </pool>
        """
    }
}
