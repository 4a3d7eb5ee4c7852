
/// How a DMAP tag's value is read. Containers hold nested tags; everything else is a leaf.
package enum DMAPKind: Sendable, Equatable {
    case container, uint, bool, string, bplist, raw, ignore
}

/// The tag table: the DMAP/DACP tags an Apple TV (and iTunes) sends, with how each is read.
/// Tags not listed are kept as raw bytes.
package enum DMAPTagTable {
    package static func kind(_ tag: String) -> DMAPKind? { table[tag] }

    static let table: [String: DMAPKind] = {
        var t: [String: DMAPKind] = [:]
        for c in ["caci", "ceQR", "cmcp", "cmpa", "cmst", "mdcl", "mlcl", "mlit", "mlog", "msrv"] { t[c] = .container }
        for u in ["aels", "aeFP", "aeSV", "apro", "asai", "asgr", "astm", "caar", "caas", "cafs", "cant", "capr",
                  "caps", "carp", "cash", "cast", "casu", "cavs", "cmmk", "cmpg", "cmpr", "cmsr", "miid", "mlid",
                  "mpro", "mrco", "msdc", "mstc", "mstm", "msto", "mstt", "mtco",
                  "aeFR", "aeSX", "asse", "atCV", "atSV", "caks", "caov", "casa", "casc", "cass", "ceQA", "ceNQ",
                  "cmik", "cmsb", "cmsc", "cmsp", "cmsv", "mscu"] { t[u] = .uint }
        for b in ["aelb", "aeGs", "ated", "cafe", "cavc", "cave", "msal", "msbr", "msed", "msex", "msix", "mslr",
                  "mspi", "msqy", "msup", "ceQU", "ceMQ", "ceQu"] { t[b] = .bool }
        for s in ["asal", "asar", "cana", "cang", "canl", "cann", "ceGS", "cmnm", "cmty", "minm", "cmbe", "cmcc",
                  "cmce", "cmte"] { t[s] = .string }
        for r in ["canp", "aead", "capl", "ceNR"] { t[r] = .raw }
        t["ceSD"] = .bplist
        t["cmcv"] = .ignore
        return t
    }()
}
