import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File path names as NSString took them apart (`deletingLastPathComponent`, `lastPathComponent`,
/// `pathExtension`) and the user's home directory (`NSHomeDirectory()`), without Foundation.
package enum PathName {
    /// "/a/b/c" → "/a/b", "/a/b/" → "/a", "/c" → "/", "c" → "".
    package static func directory(_ path: String) -> String {
        let p = trimmed(path)
        guard let slash = p.lastIndex(of: "/") else { return "" }
        var d = p[..<slash]
        while d.count > 1 && d.hasSuffix("/") { d = d.dropLast() }
        return d.isEmpty ? "/" : String(d)
    }

    /// "/a/b/c" → "c", "/a/b/" → "b", "/" → "/".
    package static func lastComponent(_ path: String) -> String {
        let p = trimmed(path)
        if p == "/" { return "/" }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }

    /// "song.flac" → "flac", "a.b/c" → "", ".profile" → "".
    package static func pathExtension(_ path: String) -> String {
        let name = lastComponent(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...])
    }

    /// The home directory of the user the process runs as (the password database's), "/" when it has none.
    package static func homeDirectory() -> String {
        guard let entry = getpwuid(getuid()), let dir = entry.pointee.pw_dir else { return "/" }
        return String(cString: dir)
    }

    /// Repeated slashes as one ("//a//b" is "/a/b", as NSString reads it), without a trailing one.
    private static func trimmed(_ path: String) -> Substring {
        var collapsed = ""
        collapsed.reserveCapacity(path.utf8.count)
        for c in path where !(c == "/" && collapsed.hasSuffix("/")) { collapsed.append(c) }
        var p = Substring(collapsed)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return p
    }
}

extension PathName {
    /// Why a file operation of FoundationEssentials (e.g. `Data.write(to:)`) failed, for a message:
    /// the C library's text for its POSIX error ("No such file or directory"); for a file error
    /// without one, the C library's text for the nearest errno, else "the file operation failed";
    /// never a type name, a code number or a dump.
    package static func describe(_ error: any Error) -> String {
        let posix = (error as? CocoaError)?.underlying as? POSIXError ?? error as? POSIXError
        if let posix { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = error as? CocoaError {
            let errno: Int32? = switch cocoa.code {
            case .fileNoSuchFile, .fileReadNoSuchFile: ENOENT
            case .fileReadNoPermission, .fileWriteNoPermission: EACCES
            case .fileWriteOutOfSpace: ENOSPC
            case .fileWriteVolumeReadOnly: EROFS
            case .fileWriteFileExists: EEXIST
            default: nil
            }
            if let errno { return String(cString: strerror(errno)) }
            return "the file operation failed"
        }
        return "the file operation failed"
    }
}
