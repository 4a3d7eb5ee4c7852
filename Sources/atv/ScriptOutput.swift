// atvscript's output objects (pyatv/scripts/atvscript.py): every line is one JSON object with
// "result" ("success"/"failure") and "datetime" (ISO-8601 with offset); failures carry "error"
// (a snake_case kind: device_not_found, unsupported_command, …) and "exception" (the message).
import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

enum ScriptOutput {
    /// `{"result":"failure","datetime":…,"error":…,"exception":…}` plus `values`.
    static func failure(error: String, exception: String?, values: [String: Any] = [:]) -> [String: Any] {
        var object = values
        object["result"] = "failure"
        object["datetime"] = isoNow()
        object["error"] = error
        if let exception { object["exception"] = exception }
        return object
    }

    static func failure(_ error: ATVError, values: [String: Any] = [:]) -> [String: Any] {
        failure(error: errorName(error), exception: printable(error.description), values: values)
    }

    /// The "error" field: atvscript's names where it has one, else the error's kind in snake_case.
    static func errorName(_ error: ATVError) -> String {
        switch error {
        case .deviceNotFound: "device_not_found"
        case .notSupported: "unsupported_command"
        case .noService: "no_service"
        case .invalidValue: "invalid_value"
        case .invalidState: "invalid_state"
        case .blocked: "blocked"
        case .connectionFailed: "connection_failed"
        case .connectionLost: "connection_lost"
        case .timeout: "timeout"
        case .pairingFailed: "pairing_failed"
        case .authenticationFailed: "authentication_failed"
        case .noCredentials: "no_credentials"
        case .invalidCredentials: "invalid_credentials"
        case .deviceIdMissing: "device_id_missing"
        case .protocolError: "protocol_error"
        case .httpError: "http_error"
        case .playbackError: "playback_error"
        case .invalidConfig: "invalid_config"
        case .settings: "settings"
        case .badInput: "bad_input"
        case .notImplemented: "not_implemented"
        }
    }

    /// pyatv's `field if field else None`: empty strings, zeros and missing values are null.
    static func truthy(_ value: Any?) -> Any {
        switch value {
        case nil: return JSONNull()
        case let s as String: return s.isEmpty ? JSONNull() : s
        case let i as Int: return i == 0 ? JSONNull() : i
        case let u as UInt64: return u == 0 ? JSONNull() : u
        case let d as Double: return d == 0 ? JSONNull() : d
        case let b as Bool: return b ? true : JSONNull()
        case let .some(v): return v
        }
    }
}
