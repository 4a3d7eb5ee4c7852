// Filtering and rendering of parsed log entries: a terminal view (optional ANSI colours) and a
// self-contained HTML page whose filters (include/exclude regex, level, protocol) run client-side.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

package struct LogFilter: Sendable {
    package var include: String?
    package var exclude: String?
    package var minimumLevel: LogLevel?
    package var protocols: Set<String>

    package init(include: String? = nil, exclude: String? = nil, minimumLevel: LogLevel? = nil, protocols: Set<String> = []) {
        self.include = include
        self.exclude = exclude
        self.minimumLevel = minimumLevel
        self.protocols = protocols
    }

    /// Fails with a readable message when a pattern is not a valid regular expression.
    package func compiled() throws -> (Regex<AnyRegexOutput>?, Regex<AnyRegexOutput>?) {
        func make(_ p: String?, _ name: String) throws -> Regex<AnyRegexOutput>? {
            guard let p else { return nil }
            do { return try Regex(p) } catch { throw LogFilterError(message: "--\(name) \(p): not a valid regular expression") }
        }
        return (try make(include, "include"), try make(exclude, "exclude"))
    }

    package func apply(_ entries: [LogEntry]) throws -> [LogEntry] {
        let (inc, exc) = try compiled()
        return entries.filter { e in
            if let m = minimumLevel, let l = e.level, l < m { return false }
            if minimumLevel != nil, e.level == nil { return false }
            if !protocols.isEmpty, !protocols.contains(e.proto) { return false }
            let text = e.fullText
            if let inc, text.firstMatch(of: inc) == nil { return false }
            if let exc, text.firstMatch(of: exc) != nil { return false }
            return true
        }
    }
}

package struct LogFilterError: Error, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}

package enum LogRenderer {
    /// One block per entry: header line, continuation lines, decoded tree (indented).
    package static func terminal(_ entries: [LogEntry], color: Bool) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        var out: [String] = []
        for e in entries {
            var head: [String] = []
            if let t = e.timestamp { head.append(paint(t, "2")) }
            if let l = e.level {
                let code = switch l { case .trace, .debug: "36"; case .info, .notice: "32"; case .warning: "33"; case .error, .critical: "31" }
                head.append(paint(String((l.description.uppercased() + String(repeating: " ", count: 7)).prefix(7)), code))
            }
            if e.proto != "other" { head.append(paint("[\(e.proto)]", "35")) }
            if let label = e.label { head.append(paint(label, "34")) }
            head.append(safe(shortened(e)))
            out.append(head.joined(separator: " "))
            for c in e.continuation { out.append("    " + safe(c)) }
            for d in e.decoded ?? [] { out.append("    " + paint(safe(d), "90")) }
        }
        return out.joined(separator: "\n") + (out.isEmpty ? "" : "\n")
    }

    /// The message with a decoded hex payload cut short (the tree below shows it).
    package static func shortened(_ e: LogEntry) -> String {
        guard e.decoded != nil else { return e.message }
        for key in ["opack=", "dmap=", "protobuf="] {
            guard let r = e.message.firstRange(of: key) else { continue }
            let hex = e.message[r.upperBound...].prefix { $0 != " " }
            guard hex.count > 32 else { return e.message }
            return String(e.message[..<r.upperBound]) + hex.prefix(32) + "…(\(hex.count / 2) bytes)" + e.message[hex.endIndex...]
        }
        return e.message
    }

    /// Control characters from the log never reach the terminal raw.
    static func safe(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 && u.value != 0x09 || u.value == 0x7F || (0x80 ... 0x9F).contains(u.value) {
                out += String(cFormat: "\\x%02x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if u.value < 0x20 { out += String(cFormat: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// A self-contained page: the entries as JSON data, rendered and filtered by inline script.
    package static func html(_ entries: [LogEntry], title: String) -> String {
        var rows: [String] = []
        for e in entries {
            let fields = [
                "\"n\":\(e.line)",
                "\"t\":" + jsonString(e.timestamp ?? ""),
                "\"l\":" + jsonString(e.level?.description ?? ""),
                "\"lv\":\(e.level?.rawValue ?? -1)",
                "\"p\":" + jsonString(e.proto),
                "\"g\":" + jsonString(e.label ?? ""),
                "\"m\":" + jsonString(e.message),
                "\"c\":" + jsonString(e.continuation.joined(separator: "\n")),
                "\"d\":" + jsonString((e.decoded ?? []).joined(separator: "\n")),
            ]
            rows.append("{" + fields.joined(separator: ",") + "}")
        }
        let protoBoxes = LogParser.protocols.map {
            "<label><input type=\"checkbox\" class=\"proto\" value=\"\($0)\" checked> \($0)</label>"
        }.joined(separator: " ")
        let levelOptions = (["all"] + LogLevel.allCases.map(\.description)).enumerated().map { i, name in
            "<option value=\"\(i - 1)\">\(name)</option>"
        }.joined()
        return """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>\(escapeHTML(title))</title>
        <style>
        body{font-family:sans-serif;margin:0}
        #bar{position:sticky;top:0;background:#eee;padding:6px;border-bottom:1px solid #ccc}
        #bar input[type=text]{width:18em}
        table{border-collapse:collapse;width:100%;font-family:monospace;font-size:12px}
        td{padding:1px 6px;vertical-align:top;border-bottom:1px solid #f0f0f0;white-space:pre-wrap;word-break:break-all}
        .trace,.debug{color:#067}.info,.notice{color:#070}.warning{color:#a60}.error,.critical{color:#b00}
        .dec{color:#555;background:#f8f8f8}
        </style></head><body>
        <div id="bar">Include <input type="text" id="inc"> Exclude <input type="text" id="exc">
        Level <select id="lvl">\(levelOptions)</select> \(protoBoxes) <span id="count"></span> <span id="err" style="color:#b00"></span></div>
        <table><tbody id="rows"></tbody></table>
        <script>
        const LOG = [\(rows.joined(separator: ",\n"))];
        function esc(s){return s.replace(/&/g,"&amp;").replace(/</g,"&lt;").replace(/>/g,"&gt;");}
        function render(){
          let inc=null, exc=null; document.getElementById("err").textContent="";
          try{ const i=document.getElementById("inc").value; if(i) inc=new RegExp(i);
               const x=document.getElementById("exc").value; if(x) exc=new RegExp(x);}catch(e){document.getElementById("err").textContent=e.message;return;}
          const lv=parseInt(document.getElementById("lvl").value);
          const ps=new Set([...document.querySelectorAll(".proto:checked")].map(b=>b.value));
          const out=[]; let n=0;
          for(const e of LOG){
            if(lv>=0 && (e.lv<0 || e.lv<lv)) continue;
            if(!ps.has(e.p)) continue;
            const text=[e.t,e.l,e.g,e.m,e.c,e.d].join(" ");
            if(inc && !inc.test(text)) continue;
            if(exc && exc.test(text)) continue;
            n++;
            out.push("<tr><td>"+e.n+"</td><td>"+esc(e.t)+"</td><td class='"+e.l+"'>"+esc(e.l)+"</td><td>"+esc(e.p)+"</td><td>"+esc(e.g)+"</td><td>"+esc(e.m)+(e.c?"\\n"+esc(e.c):"")+(e.d?"<div class='dec'>"+esc(e.d)+"</div>":"")+"</td></tr>");
          }
          document.getElementById("rows").innerHTML=out.join("");
          document.getElementById("count").textContent=n+" of "+LOG.length+" lines";
        }
        for(const id of ["inc","exc","lvl"]) document.getElementById(id).addEventListener("input",render);
        document.querySelectorAll(".proto").forEach(b=>b.addEventListener("change",render));
        render();
        </script></body></html>

        """
    }

    static func escapeHTML(_ s: String) -> String {
        s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }
}
