import IonLabConfig
import IonLabYAML
import Testing

/// The error text `yaml` is rejected with, or nil (and a recorded issue) when it was accepted.
func rejection<T: Decodable>(_ type: T.Type, _ yaml: String, file: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        _ = try StrictYAML.decode(type, from: yaml, file: file)
        Issue.record("accepted:\n\(yaml)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return "\(error)"
    }
}
