// ATVDiscovery: filled in by the discovery issue (#4). Nothing here pretends to work yet.
import ATVCore

/// Namespace marker for the module.
public enum ATVDiscoveryModule {
    public static let implemented = false
}
