// ATVDMAP: filled in by the DMAP issue (#9). Nothing here pretends to work yet.
import ATVCore

/// Namespace marker for the module.
public enum ATVDMAPModule {
    public static let implemented = false
}
