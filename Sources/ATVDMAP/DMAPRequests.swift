import ATVCore

/// An HTTP request to a DMAP (DACP) service, before any I/O.
package struct DMAPRequest: Sendable, Equatable {
    package var method: String
    /// Path and query, e.g. "/ctrl-int/1/pause?session-id=5&prompt-id=0".
    package var uri: String
    package var headers: [(String, String)]
    package var body: [UInt8]

    package static func == (a: DMAPRequest, b: DMAPRequest) -> Bool {
        a.method == b.method && a.uri == b.uri && a.body == b.body
            && a.headers.map(\.0) == b.headers.map(\.0) && a.headers.map(\.1) == b.headers.map(\.1)
    }

    /// The headers a Remote sends on every request.
    package static let commonHeaders: [(String, String)] = [
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip"),
        ("Client-DAAP-Version", "3.13"),
        ("Client-ATV-Sharing-Version", "1.2"),
        ("Client-iTunes-Sharing-Version", "3.15"),
        ("User-Agent", "Remote/1021"),
        ("Viewer-Only-Client", "1"),
    ]

    static func get(_ uri: String) -> DMAPRequest {
        DMAPRequest(method: "GET", uri: uri, headers: commonHeaders, body: [])
    }

    static func post(_ uri: String, body: [UInt8] = []) -> DMAPRequest {
        DMAPRequest(method: "POST", uri: uri,
                    headers: commonHeaders + [("Content-Type", "application/x-www-form-urlencoded")], body: body)
    }
}

/// What a client logs in with: a pairing GUID from DMAP pairing (`0x` + 16 hex digits) or a Home
/// Sharing GUID (`hsgid`, a UUID).
package enum DMAPLoginID: Sendable, Equatable {
    case pairingGUID(String)
    case homeSharing(String)

    /// Parses stored DMAP credentials: `0x` + 16 hex digits, or a UUID.
    package init(credentials: String) throws {
        let c = credentials
        let hex = Set("0123456789abcdefABCDEF")
        if c.hasPrefix("0x"), c.count >= 18, c.dropFirst(2).prefix(16).allSatisfy({ hex.contains($0) }) {
            self = .pairingGUID(c)
            return
        }
        let groups = c.split(separator: "-", omittingEmptySubsequences: false)
        if groups.map(\.count) == [8, 4, 4, 4, 12], groups.allSatisfy({ $0.allSatisfy { hex.contains($0) } }) {
            self = .homeSharing(c)
            return
        }
        throw ATVError.invalidCredentials("DMAP credentials must be 0x followed by 16 hex digits (from `atv pair --protocol dmap`) or a Home Sharing GUID, got '\(credentials)'")
    }

    var query: String {
        switch self {
        case .pairingGUID(let g): "pairing-guid=\(g)"
        case .homeSharing(let h): "hsgid=\(h)"
        }
    }
}

/// A playback command sent as `POST ctrl-int/1/<name>`.
package enum DMAPCommand: String, Sendable, CaseIterable {
    case play, pause, playPause = "playpause", stop, next = "nextitem", previous = "previtem",
         volumeUp = "volumeup", volumeDown = "volumedown"
}

/// A direction emulated with a touch swipe.
package enum DMAPArrow: String, Sendable, CaseIterable { case up, down, left, right }

/// A property set with `setproperty`.
package enum DMAPProperty: String, Sendable {
    /// Milliseconds.
    case playingTime = "dacp.playingtime"
    /// 0 off, 1 on.
    case shuffleState = "dacp.shufflestate"
    /// 0 off, 1 track, 2 all.
    case repeatState = "dacp.repeatstate"
}

/// Builders for every request the client sends (paths relative to the service root).
package enum DMAPRequests {
    package static func serverInfo() -> DMAPRequest { .get("/server-info") }

    package static func login(_ id: DMAPLoginID) -> DMAPRequest { .get("/login?\(id.query)&hasFP=1") }

    package static func playStatusUpdate(session: UInt64, revision: UInt64) -> DMAPRequest {
        .get("/ctrl-int/1/playstatusupdate?session-id=\(session)&revision-number=\(revision)")
    }

    /// nil width/height → 0 (the device's default).
    package static func artwork(session: UInt64, width: Int?, height: Int?) -> DMAPRequest {
        .get("/ctrl-int/1/nowplayingartwork?mw=\(width ?? 0)&mh=\(height ?? 0)&session-id=\(session)")
    }

    package static func command(_ command: DMAPCommand, session: UInt64) -> DMAPRequest {
        .post("/ctrl-int/1/\(command.rawValue)?session-id=\(session)&prompt-id=0")
    }

    static func controlPromptURI(session: UInt64) -> String {
        "/ctrl-int/1/controlpromptentry?session-id=\(session)&prompt-id=0"
    }

    /// `select`, `menu` or `topmenu`: body `cmbe(name) ‖ cmcc(u8 0)`.
    package static func controlPrompt(_ name: String, session: UInt64) -> DMAPRequest {
        .post(controlPromptURI(session: session),
              body: DMAPSerializer.serialize([.string("cmbe", name), .uint8("cmcc", 0)]))
    }

    /// One touch event: body `cmcc(u8 0x30) ‖ cmbe("touch<Down|Move|Up>&time=t&point=x,y")`.
    package static func touchBody(_ phase: String, time: Int, x: Int, y: Int) -> [UInt8] {
        DMAPSerializer.serialize([.uint8("cmcc", 0x30), .string("cmbe", "touch\(phase)&time=\(time)&point=\(x),\(y)")])
    }

    /// The seven touch events that emulate an arrow key (a short swipe).
    package static func arrowBodies(_ arrow: DMAPArrow) -> [[UInt8]] {
        let vertical = [0, 1, 2, 3, 4, 5, 6]
        let horizontal = [0, 1, 3, 4, 5, 6, 7]
        var points: [(Int, Int, Int)] = []  // (time, x, y)
        switch arrow {
        case .up: points = (0..<6).map { (vertical[$0], 20, 275 - 5 * $0) } + [(6, 20, 250)]
        case .down: points = (0..<6).map { (vertical[$0], 20, 250 + 5 * $0) } + [(6, 20, 275)]
        case .left: points = (0..<6).map { (horizontal[$0], 75 - 5 * $0, 100) } + [(7, 50, 100)]
        case .right: points = (0..<6).map { (horizontal[$0], 50 + 5 * $0, 100) } + [(7, 75, 100)]
        }
        return points.enumerated().map { i, p in
            let phase = i == 0 ? "Down" : (i == points.count - 1 ? "Up" : "Move")
            return touchBody(phase, time: p.0, x: p.1, y: p.2)
        }
    }

    package static func arrow(_ arrow: DMAPArrow, session: UInt64) -> [DMAPRequest] {
        arrowBodies(arrow).map { .post(controlPromptURI(session: session), body: $0) }
    }

    package static func setProperty(_ property: DMAPProperty, _ value: Int, session: UInt64) -> DMAPRequest {
        .post("/ctrl-int/1/setproperty?\(property.rawValue)=\(value)&session-id=\(session)")
    }
}
