import ATVCore
import NIOCore
import NIOPosix

extension Discovery {
    /// The local IPv4 address the kernel would use to reach `host` (a connected UDP socket's local
    /// address; no packet is sent). Where to publish a service the device must find (DMAP pairing).
    public static func localIPv4Address(facing host: String) async throws(ATVError) -> String {
        let remote: SocketAddress
        do { remote = try SocketAddress(ipAddress: host, port: 9) } catch {
            throw ATVError.invalidValue("\(host) is not an IPv4 address")
        }
        guard case .v4 = remote else { throw ATVError.invalidValue("\(host) is not an IPv4 address") }
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(to: remote).get()
        } catch {
            throw ATVError.connectionFailed("no route to \(host)")
        }
        defer { channel.close(promise: nil) }
        guard let ip = channel.localAddress?.ipAddress else { throw ATVError.connectionFailed("no local address facing \(host)") }
        return ip
    }
}
