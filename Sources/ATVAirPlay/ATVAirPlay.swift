// ATVAirPlay: filled in by the AirPlay issues (#6, #7). Nothing here pretends to work yet.
import ATVCore

/// Namespace marker for the module.
public enum ATVAirPlayModule {
    public static let implemented = false
}
