import Foundation
import IonLabConfig
import IonLabYAML

/// The named base images VMs are made from (`controller-config/images.yaml`).
public struct ImageCatalog: Codable, Sendable, Equatable {
    public var images: [BaseImage]

    public init(images: [BaseImage]) { self.images = images }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        images = try container.decode([BaseImage].self, forKey: .images)
        var seen = Set<String>()
        for image in images where !seen.insert(image.name).inserted {
            throw DecodingError.dataCorruptedError(forKey: .images, in: container, debugDescription: "image '\(image.name)' is listed twice")
        }
    }

    enum CodingKeys: String, CodingKey { case images }

    public func image(named name: String) throws -> BaseImage {
        guard let image = images.first(where: { $0.name == name }) else {
            throw ValueError("no image '\(name)' in the catalog (known: \(images.map(\.name).joined(separator: ", ")))")
        }
        return image
    }

    /// The Linux kernel to probe domain types with: `image`'s own, else the first in the catalog that exists on
    /// this host. A domain type counts as working only if it boots Linux (here a KVM guest runs a boot sector
    /// yet hangs in Linux), whether or not the image boots from its own disk.
    public func probeKernel(preferring image: String? = nil) -> String? {
        if let image, let kernel = images.first(where: { $0.name == image })?.kernel { return kernel }
        return images.compactMap(\.kernel).first { FileManager.default.fileExists(atPath: $0) }
    }

    public static func load(path: String) throws -> ImageCatalog { try StrictYAML.load(ImageCatalog.self, path: path) }
}

/// A base image: a disk file (or pool volume) that overlays are created on, and how to boot it.
public struct BaseImage: Codable, Sendable, Equatable {
    public var name: String
    /// An absolute path on the backend host, or `POOL/VOLUME` for a libvirt volume.
    public var path: String
    /// `raw` or `qcow2`: the backing format written into each overlay.
    public var format: String
    /// Direct kernel boot (the test image): kernel, initrd and command line. Cloud images leave these out.
    public var kernel: String?
    public var initrd: String?
    public var cmdline: String?
    /// The OS family (`debian`, `ubuntu`, `pop`), for recipes that differ by distribution.
    public var os: String

    public init(name: String, path: String, format: String, kernel: String? = nil, initrd: String? = nil,
                cmdline: String? = nil, os: String) {
        self.name = name
        self.path = path
        self.format = format
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.os = os
    }

    enum CodingKeys: String, CodingKey { case name, path, format, kernel, initrd, cmdline, os }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: AgentName.validate)
        path = try container.decode(String.self, forKey: .path, check: Check.nonEmpty)
        format = try container.decodeIfPresent(String.self, forKey: .format, check: Self.checkFormat) ?? "qcow2"
        kernel = try container.decodeIfPresent(String.self, forKey: .kernel, check: Check.absolutePath)
        initrd = try container.decodeIfPresent(String.self, forKey: .initrd, check: Check.absolutePath)
        cmdline = try container.decodeIfPresent(String.self, forKey: .cmdline)
        os = try container.decode(String.self, forKey: .os, check: Check.nonEmpty)
        if initrd != nil, kernel == nil {
            throw DecodingError.dataCorruptedError(forKey: .initrd, in: container, debugDescription: "an initrd needs a kernel")
        }
    }

    /// The pool and volume when `path` names a libvirt volume rather than a file.
    public var poolVolume: (pool: String, volume: String)? {
        guard !path.hasPrefix("/") else { return nil }
        let parts = path.split(separator: "/", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    static func checkFormat(_ format: String) throws {
        guard ["raw", "qcow2"].contains(format) else { throw ValueError("expected raw or qcow2, found '\(format)'") }
    }
}

extension ImageCatalog {
    /// The catalog `ionlab init` writes; the same text as `controller-config/images.yaml` (a test keeps them equal).
    public static let defaultYAML = """
    # ionlab image catalog: the base images VMs are made from. Each VM gets a qcow2 overlay on its image.
    #   name     what `ionlab vm create --image` takes
    #   path     an absolute path on the backend host, or POOL/VOLUME for a libvirt volume
    #   format   raw or qcow2 (the overlay's backing format)
    #   kernel, initrd, cmdline   direct kernel boot (leave out for cloud images, which boot from their disk)
    #   os       the OS family, for recipes that differ by distribution
    images:
      # The small test guest: bookworm with cloud-init, built and cached by scripts/build-test-image.sh.
      - name: bookworm-test
        path: /var/cache/ionlab/images/bookworm-test/disk.raw
        format: raw
        kernel: /var/cache/ionlab/images/bookworm-test/vmlinuz
        initrd: /var/cache/ionlab/images/bookworm-test/initrd.img
        cmdline: "root=/dev/vda rw console=ttyS0"
        os: debian
      # The desktop guest: bookworm with cloud-init and a Wayland desktop (sway, PipeWire, xdg-desktop-portal-wlr,
      # wayvnc on the guest's loopback), a partitioned qcow2 that boots through its own GRUB, as cloud images do.
      # Built and cached by scripts/build-desktop-image.sh.
      - name: bookworm-desktop
        path: /var/cache/ionlab/images/bookworm-desktop/disk.qcow2
        format: qcow2
        os: debian
      # A COSMIC desktop for the ionChannel spec (fleets/ionchannel.yaml). No such image is published: make one
      # that boots by itself with cloud-init (NoCloud), has the user `desktop` whose COSMIC session starts at boot
      # (for example greetd's initial_session running start-cosmic), and xdg-desktop-portal. See the README.
      - name: pop-cosmic
        path: /var/lib/ionlab/images/pop-cosmic.qcow2
        format: qcow2
        os: pop
      # A real cloud image: download it once, then `ionlab vm create NAME --image debian-12 --memory 1024 --disk 8`.
      #   https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2
      - name: debian-12
        path: /var/lib/ionlab/images/debian-12-generic-amd64.qcow2
        format: qcow2
        os: debian
      #   https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
      - name: ubuntu-24.04
        path: /var/lib/ionlab/images/noble-server-cloudimg-amd64.img
        format: qcow2
        os: ubuntu

    """
}
