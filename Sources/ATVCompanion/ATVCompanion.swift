// ATVCompanion: filled in by the Companion issue (#8). Nothing here pretends to work yet.
import ATVCore

/// Namespace marker for the module.
public enum ATVCompanionModule {
    public static let implemented = false
}
