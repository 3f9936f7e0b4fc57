import Foundation
import IonLabConfig
import IonLabYAML

/// What a fleet spec is checked against besides itself: the images and backends the controller offers.
public struct FleetContext: Sendable {
    public var images: [String]
    public var backends: [String]

    public init(images: [String], backends: [String]) {
        self.images = images
        self.backends = backends
    }
}

/// A workflow recipe file (`controller-config/recipes/`): named steps a fleet's workflow can include.
public struct Recipe: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    public var steps: [WorkflowStep]

    enum CodingKeys: String, CodingKey { case name, description, steps }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name, check: Check.nonEmpty)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        steps = try container.decode([WorkflowStep].self, forKey: .steps, check: Check.nonEmpty)
    }
}

extension FleetSpec {
    /// Loads a spec ready to run: every recipe expanded into its steps, every copy source made absolute and
    /// found, and (given a context) the image and backends known. Each problem names its file, line and field.
    public static func load(path: String, context: FleetContext?) throws -> FleetSpec {
        try StrictYAML.load(FleetSpec.self, path: path) { spec in
            try spec.checked(against: context)
            var resolved = spec
            resolved.workflow = try WorkflowStep.resolve(spec.workflow, base: directory(of: path), at: ["workflow"], recipes: true)
            return resolved
        }
    }

    func checked(against context: FleetContext?) throws {
        guard let context else { return }
        func known(_ name: String, at field: [FieldKey]) throws {
            guard !context.images.contains(name) else { return }
            throw FieldProblem(field, "no image named '\(name)' in the catalog (it has: \(context.images.joined(separator: ", ")))")
        }
        try known(image, at: ["image"])
        for (index, vm) in vms.enumerated() {
            if let own = vm.image { try known(own, at: ["vms", FieldKey(intValue: index), "image"]) }
        }
        if case .named(let names) = backend {
            for (index, name) in names.enumerated() where !context.backends.contains(name) {
                let path: [FieldKey] = names.count == 1 ? ["backend"] : ["backend", FieldKey(intValue: index)]
                throw FieldProblem(path, "no backend named '\(name)' in the controller config (it has: \(context.backends.joined(separator: ", ")))")
            }
        }
    }

    static func directory(of path: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}

extension WorkflowStep {
    /// Steps with recipes replaced by their own steps (named "recipe: step") and copy sources made absolute
    /// against `base`. A recipe may not include another recipe.
    static func resolve(_ steps: [WorkflowStep], base: String, at path: [FieldKey], recipes: Bool) throws -> [WorkflowStep] {
        var resolved: [WorkflowStep] = []
        for (index, step) in steps.enumerated() {
            let here = path + [FieldKey(intValue: index)]
            switch step.operation {
            case .recipe(let file):
                guard recipes else { throw FieldProblem(here + ["recipe"], "a recipe cannot include another recipe") }
                let recipePath = absolute(file, base: base)
                guard FileManager.default.fileExists(atPath: recipePath) else {
                    throw FieldProblem(here + ["recipe"], "no such recipe file \(recipePath)")
                }
                let recipe = try StrictYAML.load(Recipe.self, path: recipePath) { recipe in
                    try resolve(recipe.steps, base: FleetSpec.directory(of: recipePath), at: ["steps"], recipes: false).map { inner in
                        var named = inner
                        named.name = "\(recipe.name): \(inner.name)"
                        return named
                    }
                }
                resolved += recipe
            case .copy(let from, let to, let exclude):
                guard to.hasPrefix("/") else { throw FieldProblem(here + ["copy", "to"], "must be an absolute path in the VM, found '\(to)'") }
                var step = step
                step.operation = .copy(from: try existing(from, base: base, at: here + ["copy", "from"]), to: to, exclude: exclude)
                resolved.append(step)
            case .package(.deb(let path)):
                var step = step
                step.operation = .package(.deb(path: try existing(path, base: base, at: here + ["package", "deb"])))
                resolved.append(step)
            case .service(var service) where service.unit != nil:
                service.unit = try existing(service.unit!, base: base, at: here + ["service", "unit"])
                var step = step
                step.operation = .service(service)
                resolved.append(step)
            case .rustdesk(var spec) where spec.deb != nil:
                spec.deb = try existing(spec.deb!, base: base, at: here + ["rustdesk", "deb"])
                var step = step
                step.operation = .rustdesk(spec)
                resolved.append(step)
            default:
                resolved.append(step)
            }
        }
        return resolved
    }

    /// A local path made absolute against `base`, which must exist.
    static func existing(_ path: String, base: String, at field: [FieldKey]) throws -> String {
        let full = absolute(path, base: base)
        guard FileManager.default.fileExists(atPath: full) else { throw FieldProblem(field, "no such file or directory \(full)") }
        return full
    }

    static func absolute(_ path: String, base: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: base).appendingPathComponent(path).standardized.path
    }
}
