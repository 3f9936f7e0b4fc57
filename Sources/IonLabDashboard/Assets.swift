import Hummingbird

/// The page's files, compiled into the binary (`.embedInCode` in Package.swift): a controller serves the
/// page it was built with, from wherever it was copied.
enum Assets {
    enum File: String {
        case index = "index.html"
        case login = "login.html"
        case script = "dashboard.js"
        case style = "dashboard.css"

        var bytes: [UInt8] {
            switch self {
            case .index: PackageResources.index_html
            case .login: PackageResources.login_html
            case .script: PackageResources.dashboard_js
            case .style: PackageResources.dashboard_css
            }
        }

        var contentType: String {
            switch self {
            case .index, .login: "text/html; charset=utf-8"
            case .script: "text/javascript; charset=utf-8"
            case .style: "text/css; charset=utf-8"
            }
        }
    }

    static func response(_ file: File) -> Response {
        Response(status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }
}
