import ATVCore
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Remote-control buttons sent as HID events: (usage page, usage).
package enum MRPHIDKey: String, Sendable, CaseIterable {
    case up, down, left, right, select, menu, suspend, wakeUp, stop, next, previous, topMenu, home
    case volumeUp, volumeDown

    package var usagePage: UInt16 {
        switch self {
        case .up, .down, .left, .right, .select, .menu, .suspend, .wakeUp: 1
        case .stop, .next, .previous, .topMenu, .home, .volumeUp, .volumeDown: 12
        }
    }

    package var usage: UInt16 {
        switch self {
        case .up: 0x8C
        case .down: 0x8D
        case .left: 0x8B
        case .right: 0x8A
        case .select: 0x89
        case .menu: 0x86
        case .suspend: 0x82
        case .wakeUp: 0x83
        case .stop: 0xB7
        case .next: 0xB5
        case .previous: 0xB6
        case .topMenu: 0x60
        case .home: 0x40
        case .volumeUp: 0xE9
        case .volumeDown: 0xEA
        }
    }
}

/// How a button is pressed.
package enum MRPInputAction: Sendable, Equatable {
    case singleTap, doubleTap, hold
}

/// One step of a button press, for the connection shell to execute in order.
package enum MRPHIDStep: Sendable, Equatable {
    /// Send without waiting for a reply.
    case send(MRPProtocolMessage)
    /// Wait this many seconds.
    case sleep(Double)
    /// Send a GENERIC message and wait for its reply, so the device has processed the events.
    case flush
}

package enum MRPHID {
    /// Hold duration (down … up).
    package static let holdSeconds = 1.0

    private static let timePrefix: [UInt8] = [0x43, 0x89, 0x22, 0xcf, 0x08, 0x02, 0x00, 0x00]
    private static let header: [UInt8] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ]
    private static let trailer: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]

    /// The 60-byte `hidEventData` of one button transition.
    package static func eventData(usagePage: UInt16, usage: UInt16, down: Bool) -> [UInt8] {
        func be(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
        return timePrefix + header + be(usagePage) + be(usage) + be(down ? 1 : 0) + trailer
    }

    /// (usagePage, usage, down) of an event, or nil if `data` is not a 60-byte HID event.
    package static func parseEventData(_ data: [UInt8]) -> (usagePage: UInt16, usage: UInt16, down: Bool)? {
        guard data.count == 60 else { return nil }
        func be(_ i: Int) -> UInt16 { UInt16(data[i]) << 8 | UInt16(data[i + 1]) }
        return (be(43), be(45), be(47) != 0)
    }

    package static func event(_ key: MRPHIDKey, down: Bool) -> MRPProtocolMessage {
        var m = MRPMessages.message(.sendHidEvent)
        m.MRPsendHideventMessage.hidEventData = Data(eventData(usagePage: key.usagePage, usage: key.usage, down: down))
        return m
    }

    /// The steps of pressing `key`: tap = down, up; double tap = two taps; hold = down, 1 s, up.
    /// Each is followed by a flush unless `flush` is false (volume keys are sent without).
    package static func steps(_ key: MRPHIDKey, _ action: MRPInputAction = .singleTap, flush: Bool = true) -> [MRPHIDStep] {
        let tap: [MRPHIDStep] = [.send(event(key, down: true)), .send(event(key, down: false))]
        var out: [MRPHIDStep]
        switch action {
        case .singleTap: out = tap
        case .doubleTap: out = tap + (flush ? [.flush] : []) + [.send(event(key, down: true)), .send(event(key, down: false))]
        case .hold: out = [.send(event(key, down: true)), .sleep(holdSeconds), .send(event(key, down: false))]
        }
        if flush { out.append(.flush) }
        return out
    }

    /// Turning the device off: Home held for 1 s, 0.1 s pause, then Select (as pyatv does).
    package static func turnOffSteps() -> [MRPHIDStep] {
        steps(.home, .hold) + [.sleep(0.1)] + steps(.select)
    }
}
