import ATV
import ATVAuth
import ATVCore
import ATVDiscovery
import Testing

/// The protocol modules the facade goes through: one per protocol, each claiming its own service
/// types, and `pair` reaching the module of the protocol asked for.
@Suite struct ProtocolModuleTests {
    @Test func oneModulePerProtocol() {
        let protocols = ProtocolModules.all.map { $0.protocol }
        #expect(protocols.count == ATVProtocol.allCases.count)
        #expect(Set(protocols) == Set(ATVProtocol.allCases))
        for module in ProtocolModules.all {
            #expect(module.serviceProtocols.contains(module.protocol), "\(module.protocol) is not set up from its own service")
        }
    }

    @Test func scanHandlersClaimEachProtocolTypeOnceAndMakeThatProtocolsService() {
        let handlers = ProtocolModules.all.flatMap { m in m.scanHandlers.map { (m.protocol, $0) } }
        let types = handlers.map(\.1.serviceType)
        #expect(Set(types).count == types.count, "a service type is claimed twice: \(types)")
        let protocolTypes = Set(ServiceType.scanned).subtracting([ServiceType.airport, ServiceType.deviceInfo, ServiceType.sleepProxy])
        #expect(Set(types) == protocolTypes)
        for (proto, handler) in handlers {
            let found = handler.handle("Kitchen", 7000, [:], [:])
            #expect(found.service.protocol == proto, "\(handler.serviceType) made a \(found.service.protocol) service")
            #expect(found.service.port == 7000)
        }
    }

    @Test func pairGoesToTheModuleOfTheProtocolAsked() async throws {
        let services = ATVProtocol.allCases.map { ServiceConfig(protocol: $0, identifier: "id-\($0.key)", port: 1) }
        let config = DeviceConfig(name: "virtual", address: "127.0.0.1", services: services)
        for proto in ATVProtocol.allCases {
            let handler = try pair(config, protocol: proto, options: PairingOptions(timeout: .seconds(5)))
            #expect(handler.pairingProtocol == proto)
            #expect(handler.deviceProvidesPIN == (proto != .dmap))
            #expect(await handler.hasPaired == false)
            await handler.close()
        }
    }

    @Test func pairWithoutTheServiceIsNoService() {
        let config = DeviceConfig(name: "virtual", address: "127.0.0.1",
                                  services: [ServiceConfig(protocol: .dmap, identifier: "x", port: 1)])
        for proto in [ATVProtocol.mrp, .companion, .airplay, .raop] {
            #expect(throws: ATVError.noService(proto)) { _ = try pair(config, protocol: proto) }
        }
    }
}
