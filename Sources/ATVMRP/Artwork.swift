import ATVCore

/// Artwork of the current item: its identifier, the URLs to try and the in-band reply.
package enum MRPArtwork {
    /// An identifier for the current artwork, nil if the item has none: `artworkIdentifier`, else
    /// `contentIdentifier`, else the item identifier — only when artwork is available or has a URL.
    package static func artworkID(_ item: MRPContentItem) -> String? {
        guard item.hasMetadata else { return nil }
        let md = item.metadata
        guard md.artworkAvailable || (md.hasArtworkURL && !md.artworkURL.isEmpty) else { return nil }
        if md.hasArtworkIdentifier, !md.artworkIdentifier.isEmpty { return md.artworkIdentifier }
        if md.hasContentIdentifier, !md.contentIdentifier.isEmpty { return md.contentIdentifier }
        return item.identifier
    }

    /// HTTP URLs to try, in order: `artworkIdentifier` as a template ({w}, {h}, {c}, {f}), then `artworkURL`.
    package static func candidateURLs(_ metadata: MRPContentItemMetadata, width: Int, height: Int) -> [String] {
        var out: [String] = []
        let id = metadata.artworkIdentifier
        if metadata.hasArtworkIdentifier, id.hasPrefix("http://") || id.hasPrefix("https://") {
            let w = width > 0 ? width : 999_999, h = height > 0 ? height : 999_999
            out.append(id.replacing("{w}", with: String(w))
                .replacing("{h}", with: String(h))
                .replacing("{c}", with: "bb")
                .replacing("{f}", with: "png"))
        }
        if metadata.hasArtworkURL, !metadata.artworkURL.isEmpty { out.append(metadata.artworkURL) }
        return out
    }

    /// The artwork carried in the reply to a PLAYBACK_QUEUE_REQUEST (a SET_STATE with a queue).
    package static func fromReply(_ reply: MRPProtocolMessage) throws(ATVError) -> ArtworkInfo? {
        guard reply.hasMRPsetStateMessage, reply.MRPsetStateMessage.hasPlaybackQueue else {
            throw ATVError.protocolError("artwork reply has no playback queue (type \(reply.type))")
        }
        let queue = reply.MRPsetStateMessage.playbackQueue
        let index = Int(queue.location)
        let items = queue.contentItems
        guard let item = items.indices.contains(index) ? items[index] : items.first,
              item.hasArtworkData, !item.artworkData.isEmpty else { return nil }
        // MIME type from the item's metadata (empty if the device did not say).
        return ArtworkInfo(bytes: Array(item.artworkData), mimeType: item.metadata.artworkMimetype,
                           width: Int(item.artworkDataWidth), height: Int(item.artworkDataHeight))
    }
}
