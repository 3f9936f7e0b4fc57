import Foundation
import IonLabAdminAPI
import IonLabDashboard
import IonLabPictures

/// Gathers what a fleet's report shows (``FleetReportPage``): the VMs as the dashboard has them, their verify
/// steps' last verdicts from the events, and their pictures from `STATE/pictures`, read back and checked.
struct FleetReportMaker {
    let controller: Controller
    /// A report holds every picture whole, all together at most this.
    static let totalPictureBytes = 192 << 20

    func html(fleet: String) throws -> String {
        guard let spec = try controller.store.fleet(fleet) else { throw ControllerError("no fleet named '\(fleet)'") }
        let rows = try controller.overview(fleet: fleet).vms
        var events: [Event] = []
        var after: Int64 = 0
        while true {
            let part = try controller.store.events(after: after, fleet: fleet, limit: 10_000)
            events += part.filter { $0.kind == .verificationComplete }
            guard let last = part.last, part.count == 10_000 else { break }
            after = last.seq
        }
        let verifications = VerificationDetail.latest(events, steps: spec.workflow.map(\.name))
        var budget = Self.totalPictureBytes
        let vms = rows.map { row in
            FleetReportPage.VM(row: row, verifications: (verifications[row.status.name] ?? []).compactMap(VerificationDetail.of),
                               images: images(of: row.facts, budget: &budget))
        }
        return FleetReportPage(fleet: fleet, generatedAt: Date(), vms: vms).html()
    }

    /// The VM's pictures in ``PictureFacts/all``'s order, within the page's budget.
    private func images(of facts: [String: String], budget: inout Int) -> [FleetReportPage.Image] {
        let files = VMPictureFiles(root: "\(controller.paths.directory)/pictures")
        var images: [FleetReportPage.Image] = []
        for name in PictureFacts.all {
            guard let png = files.read(name, facts: facts, limit: min(VMPictureFiles.pictureBytes, budget)) else { continue }
            budget -= png.count
            images.append(FleetReportPage.Image(name: name, png: png, animated: PictureFacts.animated.contains(name)))
        }
        return images
    }
}
