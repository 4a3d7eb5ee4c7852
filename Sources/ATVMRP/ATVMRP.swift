// ATVMRP: filled in by the MRP issue (#8). Nothing here pretends to work yet.
import ATVCore

/// Namespace marker for the module.
public enum ATVMRPModule {
    public static let implemented = false
}
