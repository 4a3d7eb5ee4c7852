// ATVAuth: TLV8, SRP-6a, HAP pair-setup/verify and the channel ciphers.
// Filled in by the pairing issue (#5); nothing here pretends to pair yet.
import ATVCore

/// Namespace marker for the auth module.
public enum ATVAuthModule {
    public static let implemented = false
}
