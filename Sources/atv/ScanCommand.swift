import ArgumentParser
import ATV
import ATVCore
import ATVDiscovery
import FoundationEssentials
import Glibc

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Find devices on the network (mDNS).",
        // ArgumentParser prints the usage on one line, however long: the options are listed below it.
        usage: "atv scan [<options>]",
        discussion: """
        Each device is printed as soon as its records are complete. With --hosts, the scan ends as \
        soon as every host has answered; hosts that did not answer are named on stderr (one \
        warning line; the scan itself succeeds, as pyatv's does).

        Examples:
          atv scan
          atv scan --hosts 192.168.1.20,192.168.1.21
          atv scan --json --stream
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Comma-separated hosts to scan by unicast (for networks multicast does not cross).") var hosts: String?
    @Option(help: "Seconds to scan (1-99).") var timeout: Double = 3
    @Option(help: "Stop when a device with this identifier is found.") var id: String?
    @Option(help: "Stop as soon as this many devices were found.") var count: Int?
    @Flag(help: "Print JSON (atvscript's shape).") var json = false
    @Flag(help: "With --json: one JSON device object per line, each as soon as it is found, instead of one object at the end. (Text output always streams.)")
    var stream = false

    func validate() throws {
        guard (0.1...99).contains(timeout) else { throw ValidationError("--timeout must be within 0.1...99 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if hosts != nil && parseHostList(hosts).isEmpty { throw ValidationError("--hosts needs at least one address") }
    }

    func run() async throws {
        global.bootstrapLogging()
        try await runReportingErrors(json: json) {
            let options = ScanOptions(timeout: timeout, hosts: parseHostList(hosts), identifiers: id.map { [$0] } ?? [], count: count)
            if json && !stream {
                let (devices, silent) = try await Discovery.scanAllReportingSilence(options)
                printJSON(["result": "success", "datetime": isoNow(), "devices": devices.map(deviceJSON)])
                warn(silent, options)
                return
            }
            if !json {
                print("Scan Results")
                print(String(repeating: "=", count: 40))
                fflush(nil)
            }
            // Each device once, as soon as it is complete (a later, larger version is not repeated).
            var printed = Set<String>()
            var silent: [String] = []
            for try await event in Discovery.events(options) {
                switch event {
                case .found(let device):
                    guard printed.insert(device.address).inserted else { continue }
                    if json {
                        printJSON(deviceJSON(device))
                    } else {
                        if printed.count > 1 { print("") }
                        print(describe(device))
                    }
                    fflush(nil)
                case .silentHosts(let hosts):
                    silent = hosts
                }
            }
            if printed.isEmpty && !json { print("No devices found.") }
            warn(silent, options)
        }
    }

    /// Devices were found, but some hosts never answered: say so in one line.
    func warn(_ silent: [String], _ options: ScanOptions) {
        guard !silent.isEmpty else { return }
        StandardStream.writeError("atv: warning: \(printable(Discovery.silenceText(silent, timeout: options.timeout)))\n")
    }
}

/// The block `atvremote scan` prints for a device.
func describe(_ d: DeviceConfig) -> String {
    var lines = [
        "       Name: \(d.name)",
        "   Model/SW: \(d.deviceInfo)",
        "    Address: \(d.address)",
        "        MAC: \(d.deviceInfo.mac ?? "None")",
        " Deep Sleep: \(d.deepSleep ? "True" : "False")",
        "Identifiers:",
    ]
    lines += d.allIdentifiers.map { " - \($0)" }
    lines.append("Services:")
    for s in d.services {
        var line = " - Protocol: \(s.protocol), Port: \(s.port), Credentials: \(s.credentials ?? "None"), "
        line += "Requires Password: \(s.requiresPassword ? "True" : "False"), Password: \(s.password ?? "None"), Pairing: \(s.pairing)"
        if !s.enabled { line += " (disabled)" }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

/// atvscript's device object.
func deviceJSON(_ d: DeviceConfig) -> [String: Any] {
    let info = d.deviceInfo
    let os: String = switch info.effectiveOperatingSystem {
    case .legacy: "Legacy"
    case .tvOS: "TvOS"
    case .airPortOS: "AirPortOS"
    case .macOS: "MacOS"
    case .unknown: "Unknown"
    }
    return [
        "name": d.name,
        "address": d.address,
        "identifier": d.identifier ?? JSONNull(),
        "all_identifiers": d.allIdentifiers,
        "deep_sleep": d.deepSleep,
        "device_info": [
            "mac": info.mac ?? JSONNull(),
            "model": modelKey(info.model),
            "model_str": info.modelString,
            "operating_system": os,
            "version": info.version ?? JSONNull(),
        ] as [String: Any],
        "services": d.services.map { ["protocol": $0.protocol.key, "port": $0.port] as [String: Any] },
    ]
}

/// pyatv's enum member names for models ("Gen4K", "HomePodMini").
func modelKey(_ m: DeviceModel) -> String {
    switch m {
    case .unknown: "Unknown"
    case .gen2: "Gen2"
    case .gen3: "Gen3"
    case .gen4: "Gen4"
    case .gen4K: "Gen4K"
    case .homePod: "HomePod"
    case .homePodMini: "HomePodMini"
    case .airPortExpress: "AirPortExpress"
    case .airPortExpressGen2: "AirPortExpressGen2"
    case .appleTV4KGen2: "AppleTV4KGen2"
    case .music: "Music"
    case .appleTV4KGen3: "AppleTV4KGen3"
    case .homePodGen2: "HomePodGen2"
    case .appleTVGen1: "AppleTVGen1"
    }
}

/// Python's `datetime.now(timezone.utc).astimezone().isoformat()`: local time, microseconds,
/// and the offset as ±HH:MM (never "Z"), e.g. 2024-05-01T12:00:00.123456+02:00.
func isoNow(_ date: Date = Date()) -> String {
    let total = Int((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    var seconds = time_t(total / 1_000_000)
    let micros = total % 1_000_000
    var t = tm()
    localtime_r(&seconds, &t)
    let offset = t.tm_gmtoff
    let a = abs(offset)
    return String(cFormat: "%04d-%02d-%02dT%02d:%02d:%02d.%06d%c%02d:%02d", Int(t.tm_year) + 1900, Int(t.tm_mon) + 1, Int(t.tm_mday),
                  Int(t.tm_hour), Int(t.tm_min), Int(t.tm_sec), micros, Int32(UInt8(ascii: offset < 0 ? "-" : "+")), a / 3600, (a % 3600) / 60)
}

/// JSON's null in the `[String: Any]` objects `printJSON` writes.
struct JSONNull {}

/// One line of JSON, keys sorted, slashes not escaped (FoundationEssentials' JSONEncoder, with the
/// options JSONSerialization was given before: `.sortedKeys`, `.withoutEscapingSlashes`): strings,
/// integers, Double/Float, Bool, `JSONNull`, optionals, arrays and `[String: Any]` objects of them.
func printJSON(_ object: [String: Any]) {
    print(jsonText(object))
}

func jsonText(_ value: Any) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding a JSONValue cannot fail: non-finite numbers are null already.
    guard let data = try? encoder.encode(JSONValue(value)) else { return "null" }
    return String(decoding: data, as: UTF8.self)
}

/// The `Any` values `printJSON` is given, as something JSONEncoder encodes.
private enum JSONValue: Encodable {
    case string(String), bool(Bool), int(Int64), uint(UInt64), double(Double), null
    case array([JSONValue]), object([String: JSONValue])

    init(_ value: Any) {
        switch value {
        case let s as String: self = .string(s)
        case let b as Bool: self = .bool(b)
        case let d as Double: self = d.isFinite ? .double(d) : .null
        case let f as Float: self = f.isFinite ? .double(Double(f)) : .null
        case let i as any BinaryInteger:
            if let v = Int64(exactly: i) { self = .int(v) } else { self = .uint(UInt64(truncatingIfNeeded: i)) }
        case is JSONNull: self = .null
        case let o as [String: Any]: self = .object(o.mapValues(JSONValue.init))
        case let a as [Any]: self = .array(a.map(JSONValue.init))
        default:
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                self = mirror.children.first.map { JSONValue($0.value) } ?? .null
            } else {
                self = .string(String(describing: value))
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .uint(let u): try c.encode(u)
        case .double(let d): try c.encode(d)
        case .null: try c.encodeNil()
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
