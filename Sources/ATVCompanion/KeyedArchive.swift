// Text input (RTI) carries NSKeyedArchiver archives in the `_tiD` field of Companion `_tiStart`
// events and `_tiC` commands: binary plists whose `$objects` array is indexed by UIDs. These are
// the few archives RTI uses, written and read with ATVCore's `BinaryPlist`.
import ATVCore

/// NSKeyedArchiver archives as RTI uses them.
package enum RTIArchive {
    static func classRef(_ name: String) -> PlistValue {
        .dict(["$classname": .string(name), "$classes": .array([.string(name), .string("NSObject")])])
    }
    static func archive(top: [String: PlistValue], objects: [PlistValue]) -> [UInt8] {
        BinaryPlist.encode(.dict(["$version": .int(100000), "$archiver": .string("RTIKeyedArchiver"),
                                  "$top": .dict(top), "$objects": .array(objects)]))
    }

    /// Follow `path` from `$top`, resolving UIDs into `$objects` (as pyatv reads archives).
    package static func property(_ archive: [UInt8], _ path: [String]) -> PlistValue? {
        guard let root = try? BinaryPlist.decode(archive), case .array(let objects)? = root["$objects"],
              var element = root["$top"] else { return nil }
        for key in path {
            guard var next = element[key] else { return nil }
            var hops = 0
            while case .uid(let u) = next {
                guard u < UInt64(objects.count), hops < 8 else { return nil }
                next = objects[Int(u)]
                hops += 1
            }
            element = next
        }
        return element
    }

    /// The text-input session a device sends in `_tiStart`: `$top.sessionUUID` (16 bytes) and
    /// `$top.documentState.docSt.contextBeforeInput` (the current text).
    package static func session(uuid: [UInt8], text: String) -> [UInt8] {
        archive(top: ["sessionUUID": .uid(1), "documentState": .uid(2)],
                objects: [.string("$null"), .data(uuid),
                          .dict(["docSt": .uid(3), "$class": .uid(5)]),
                          .dict(["contextBeforeInput": .uid(4), "$class": .uid(6)]),
                          .string(text), classRef("RTIDocumentState"), classRef("TIDocumentState")])
    }

    /// `_tiC` payload that replaces the text with "" (clear).
    package static func clear(session: [UInt8]) -> [UInt8] {
        archive(top: ["textOperations": .uid(1)],
                objects: [.string("$null"),
                          .dict(["$class": .uid(7), "targetSessionUUID": .uid(5), "keyboardOutput": .uid(2), "textToAssert": .uid(4)]),
                          .dict(["$class": .uid(3)]), classRef("TIKeyboardOutput"), .string(""),
                          .dict(["NS.uuidbytes": .data(session), "$class": .uid(6)]), classRef("NSUUID"),
                          classRef("RTITextOperations")])
    }

    /// `_tiC` payload that inserts `text`.
    package static func insert(session: [UInt8], text: String) -> [UInt8] {
        archive(top: ["textOperations": .uid(1)],
                objects: [.string("$null"),
                          .dict(["keyboardOutput": .uid(2), "$class": .uid(7), "targetSessionUUID": .uid(5)]),
                          .dict(["insertionText": .uid(3), "$class": .uid(4)]), .string(text), classRef("TIKeyboardOutput"),
                          .dict(["NS.uuidbytes": .data(session), "$class": .uid(6)]), classRef("NSUUID"),
                          classRef("RTITextOperations")])
    }

    /// What a `_tiC` archive asks for.
    package struct Operation: Sendable, Equatable {
        package var session: [UInt8]?
        package var insertionText: String?
        package var textToAssert: String?
    }

    package static func operation(_ archive: [UInt8]) -> Operation? {
        guard property(archive, ["textOperations"]) != nil else { return nil }
        var op = Operation()
        if case .data(let d)? = property(archive, ["textOperations", "targetSessionUUID", "NS.uuidbytes"]) { op.session = d }
        if case .string(let s)? = property(archive, ["textOperations", "keyboardOutput", "insertionText"]) { op.insertionText = s }
        if case .string(let s)? = property(archive, ["textOperations", "textToAssert"]) { op.textToAssert = s }
        return op
    }
}
