import ATVTestSupport
import ATVMRP

func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A SET_STATE ProtocolMessage built by hand from the wire format (the field numbers of Protos/*.proto):
/// client com.apple.TVMusic, player MediaRemote-DefaultPlayer, state Playing, one item "id-1"
/// with title/album/artist, duration 300, elapsed 10, rate 1, media type Audio.
/// Fields appear in field-number order, so re-encoding the decoded message gives the same bytes.
let handBuiltSetState: [UInt8] = {
    let metadata = hex("0a 05") + utf8("Title")          // title = 1
        + hex("32 05") + utf8("Album")                   // albumName = 6
        + hex("3a 06") + utf8("Artist")                  // trackArtistName = 7
        + hex("71 0000000000c07240")                     // duration = 14 (double 300)
        + hex("9902 0000000000002440")                   // elapsedTime = 35 (double 10)
        + hex("bd02 0000803f")                           // playbackRate = 39 (float 1)
        + hex("8004 01")                                 // mediaType = 64 (Audio)
    precondition(metadata.count == 50)
    let item = hex("0a 04") + utf8("id-1") + hex("12 32") + metadata       // identifier = 1, metadata = 2
    let queue = hex("08 00") + hex("12 3a") + item                          // location = 1, contentItems = 2
    let client = hex("12 11") + utf8("com.apple.TVMusic")                   // bundleIdentifier = 2
    let player = hex("0a 19") + utf8("MediaRemote-DefaultPlayer")           // identifier = 1
    let path = hex("12 13") + client + hex("1a 1b") + player                // client = 2, player = 3
    let setState = hex("1a 3e") + queue                                     // playbackQueue = 3
        + hex("30 01")                                                      // playbackState = 6 (Playing)
        + hex("4a 32") + path                                               // playerPath = 9
    precondition(setState.count == 118)
    return hex("08 04") + hex("4a 76") + setState                           // type = 4, extension 9
}()
