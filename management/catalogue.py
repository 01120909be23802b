"""Named settings administrators can attach to configuration groups without knowing their LocURI.
Each entry says which node it sets, the values Windows accepts and how the setting
is taken back when it no longer applies: Policy CSP nodes are deleted (the policy becomes "not
configured"); nodes that support only Get/Replace are replaced with their default.

Sources (Microsoft's CSP reference, windows/client-management/mdm/): tenantlockdown-csp (Get/Replace,
bool, default false), policy-csp-experience, policy-csp-camera, policy-csp-system,
policy-csp-bluetooth, policy-csp-connectivity (all Policy CSP nodes: Add/Delete/Get/Replace, int).
"""
from dataclasses import dataclass

POLICY = "./Device/Vendor/MSFT/Policy/Config/"
BLOCK_ALLOW = (("0", "Block"), ("1", "Allow"))


@dataclass(frozen=True)
class Entry:
    key: str
    label: str
    loc_uri: str
    format: str
    choices: tuple  # (value, meaning) pairs, in the order the console offers them
    help: str = ""
    removal: str = "delete"
    reset_value: str = ""

    def meaning(self, value):
        return dict(self.choices).get(value, value)


CATALOGUE = {entry.key: entry for entry in [
    Entry("tenant_lockdown", "Require network in OOBE (TenantLockdown)",
          "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE", "bool",
          (("true", "Require a network"), ("false", "No requirement")),
          help="After a reset, the out-of-box experience offers no \"skip\": the device must reach the "
               "network, and so its enrollment again (Windows 10 1809+).",
          removal="reset", reset_value="false"),
    Entry("allow_manual_mdm_unenrollment", "Allow manual MDM unenrollment",
          POLICY + "Experience/AllowManualMDMUnenrollment", "int",
          (("0", "Block: users cannot remove the work account"), ("1", "Allow"))),
    Entry("allow_camera", "Allow camera", POLICY + "Camera/AllowCamera", "int", BLOCK_ALLOW),
    Entry("allow_telemetry", "Diagnostic data level", POLICY + "System/AllowTelemetry", "int",
          (("0", "Security (Enterprise and Education only)"), ("1", "Required (basic)"), ("2", "Enhanced"),
           ("3", "Optional (full)"))),
    Entry("allow_location", "Location services", POLICY + "System/AllowLocation", "int",
          (("0", "Force off"), ("1", "User choice"), ("2", "Force on"))),
    Entry("allow_bluetooth_discoverable", "Bluetooth discoverable mode",
          POLICY + "Bluetooth/AllowDiscoverableMode", "int", BLOCK_ALLOW),
    Entry("allow_usb_connection", "USB connection (HoloLens and mobile)",
          POLICY + "Connectivity/AllowUSBConnection", "int", BLOCK_ALLOW),
]}


def choices():
    """(key, label) pairs for a select, raw OMA-URI first."""
    return [("", "Raw OMA-URI setting")] + [(entry.key, entry.label) for entry in CATALOGUE.values()]
