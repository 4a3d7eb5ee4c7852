import ATVCore
import Foundation
import Testing
@testable import ATVMRP

@Suite struct HandshakeTests {
    private func types(_ steps: [MRPHandshake.Step]) -> [String] {
        steps.map {
            switch $0 {
            case .sendAndWait(let m): "wait \(m.type)"
            case .send(let m): "send \(m.type)"
            case .pairVerify: "verify"
            }
        }
    }

    @Test func sequence() {
        let client = MRPMessages.ClientInfo(pairingID: "P", name: "n", osBuild: "b")
        #expect(types(MRPHandshake.steps(client, hasCredentials: true)) ==
                ["wait deviceInfo", "verify", "send setConnectionState", "wait clientUpdatesConfig", "wait getKeyboardSession"])
        #expect(types(MRPHandshake.steps(client, hasCredentials: false)) ==
                ["wait deviceInfo", "send setConnectionState", "wait clientUpdatesConfig", "wait getKeyboardSession"])
    }

    @Test func correlation() {
        var req = MRPMessages.generic()
        let key = MRPCorrelation.prepare(&req, identifier: "ID-1")
        #expect(key == "ID-1" && req.identifier == "ID-1")
        var reply = MRPMessages.generic()
        reply.identifier = "ID-1"
        #expect(MRPCorrelation.key(reply) == key)
        var pairing = MRPMessages.cryptoPairing([1])
        let pk = MRPCorrelation.prepare(&pairing, identifier: "ID-2")
        #expect(pk == "type_34" && !pairing.hasIdentifier)
        #expect(MRPCorrelation.key(MRPMessages.cryptoPairing([2])) == pk)
    }
}

@Suite struct ArtworkTests {
    private func item(_ fill: (inout MRPContentItemMetadata) -> Void) -> MRPContentItem {
        .with { $0.identifier = "item"; fill(&$0.metadata) }
    }

    @Test func artworkIdentifierChoice() {
        #expect(MRPArtwork.artworkID(item { $0.title = "no artwork" }) == nil)
        #expect(MRPArtwork.artworkID(item { $0.artworkAvailable = true }) == "item")
        #expect(MRPArtwork.artworkID(item { $0.artworkAvailable = true; $0.contentIdentifier = "cid" }) == "cid")
        #expect(MRPArtwork.artworkID(item { $0.artworkURL = "http://x/a.jpg"; $0.contentIdentifier = "cid"; $0.artworkIdentifier = "aid" }) == "aid")
        #expect(MRPArtwork.artworkID(MRPContentItem.with { $0.identifier = "bare" }) == nil)
    }

    @Test func urlTemplate() {
        let md = MRPContentItemMetadata.with {
            $0.artworkIdentifier = "https://is1.example/img/{w}x{h}{c}.{f}"
            $0.artworkURL = "http://device/artwork.jpg"
        }
        #expect(MRPArtwork.candidateURLs(md, width: 300, height: 0) ==
                ["https://is1.example/img/300x999999bb.png", "http://device/artwork.jpg"])
        #expect(MRPArtwork.candidateURLs(.with { $0.artworkIdentifier = "opaque-id" }, width: 1, height: 1).isEmpty)
    }

    @Test func inBandReply() throws {
        var reply = MRPProtocolMessage()
        reply.type = .setState
        reply.MRPsetStateMessage.playbackQueue.location = 0
        reply.MRPsetStateMessage.playbackQueue.contentItems = [.with {
            $0.identifier = "i"
            $0.artworkData = Data([0x89, 0x50, 0x4E, 0x47])
            $0.artworkDataWidth = 600
            $0.artworkDataHeight = 400
            $0.metadata.artworkMimetype = "image/png"
        }]
        let art = try #require(try MRPArtwork.fromReply(MRPCodec.decode(MRPCodec.encode(reply))))
        #expect(art == ArtworkInfo(bytes: [0x89, 0x50, 0x4E, 0x47], mimeType: "image/png", width: 600, height: 400))
        reply.MRPsetStateMessage.playbackQueue.contentItems[0].clearArtworkData()
        #expect(try MRPArtwork.fromReply(reply) == nil)
        #expect(throws: ATVError.self) { try MRPArtwork.fromReply(MRPMessages.generic()) }
    }
}
