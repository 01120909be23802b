"""The offline Autopilot profile, `AutopilotConfigurationFile.json` (Microsoft's "Windows
Autopilot for existing devices"): Windows reads it from %WINDIR%\\Provisioning\\Autopilot in setup
instead of asking Microsoft's service, and sends its ZtdCorrelationId back at enrollment as the
`OfflineAutoPilotEnrollmentCorrelator` context item.

The file must be ASCII (Windows ignores a UTF-8 or UTF-16 file), so non-ASCII text is \\u-escaped.
"""
import json

from enrollment.models import EntraSettings

FILE_NAME = "AutopilotConfigurationFile.json"
FORMAT_VERSION = 2049  # the format version Windows 10 1809 and later read

# CloudAssignedOobeConfig bits. 1 to 16 are documented with the offline file; the higher bits are the
# ones Windows' own Autopilot diagnostics decode from the same value.
SKIP_CORTANA_OPT_IN = 1
OOBE_USER_NOT_LOCAL_ADMIN = 2
SKIP_EXPRESS_SETTINGS = 4        # hide privacy settings
SKIP_OEM_REGISTRATION = 8
SKIP_EULA = 16
TPM_ATTESTATION = 32             # self-deploying: the device proves itself with its TPM
AAD_DEVICE_AUTH = 64             # self-deploying: the device signs in as itself, no user
AAD_TPM_REQUIRED = 128           # pre-provisioning and self-deploying need a TPM 2.0
SKIP_WINDOWS_UPGRADE_UX = 256
ENABLE_PATCH_DOWNLOAD = 512
SKIP_KEYBOARD_SELECTION = 1024

# How long setup may spend on the Autopilot update check, in milliseconds.
AUTOPILOT_UPDATE_TIMEOUT_MS = 30 * 60 * 1000


class TenantNotConfigured(Exception):
    """The tenant's id or domain is missing from the Entra ID settings: the file would be useless."""


def oobe_config(profile):
    """The CloudAssignedOobeConfig bitmask for the profile's settings."""
    value = SKIP_OEM_REGISTRATION | SKIP_WINDOWS_UPGRADE_UX  # always, as Intune's own export does
    if profile.user_account_type == profile.UserAccountType.STANDARD:
        value |= OOBE_USER_NOT_LOCAL_ADMIN
    if profile.hide_privacy_settings:
        value |= SKIP_EXPRESS_SETTINGS
    if profile.hide_eula:
        value |= SKIP_EULA
    if profile.configure_keyboard and profile.language:
        value |= SKIP_KEYBOARD_SELECTION
    if profile.is_self_deploying:
        value |= TPM_ATTESTATION | AAD_DEVICE_AUTH | AAD_TPM_REQUIRED
    elif profile.allow_pre_provisioning:
        value |= AAD_TPM_REQUIRED
    if profile.autopilot_update_during_oobe:
        value |= ENABLE_PATCH_DOWNLOAD
    return value


def tenant():
    """The organisation's Microsoft Entra tenant as the file names it, (id, domain), from the Entra ID
    settings where it is entered once (enrollment.EntraSettings)."""
    entra = EntraSettings.get()
    if not entra.tenant_id or not entra.tenant_domain:
        raise TenantNotConfigured("Enter your tenant's id and domain in the Entra ID settings (Enrollment > "
                                  "Entra ID) before downloading offline profile files.")
    return entra.tenant_id, entra.tenant_domain


def configuration(profile):
    """The offline file's fields, as a dict."""
    tenant_id, domain = tenant()
    forced = 1 if profile.hide_change_account_options else 0
    server_data = {"ZeroTouchConfig": {"CloudAssignedTenantUpn": "", "ForcedEnrollment": forced,
                                       "CloudAssignedTenantDomain": domain}}
    fields = {
        "Comment_File": f"Profile {profile.name}",
        "Version": FORMAT_VERSION,
        "ZtdCorrelationId": str(profile.ztd_correlation_id),
        "CloudAssignedTenantId": tenant_id,
        "CloudAssignedTenantDomain": domain,
        "CloudAssignedAadServerData": json.dumps(server_data, separators=(",", ":")),
        "CloudAssignedOobeConfig": oobe_config(profile),
        "CloudAssignedDomainJoinMethod": 1 if profile.join_type == profile.JoinType.HYBRID else 0,
        "CloudAssignedForcedEnrollment": forced,
        "CloudAssignedAutopilotUpdateDisabled": 0 if profile.autopilot_update_during_oobe else 1,
        "CloudAssignedAutopilotUpdateTimeout": AUTOPILOT_UPDATE_TIMEOUT_MS,
    }
    if profile.device_name_template:
        fields["CloudAssignedDeviceName"] = profile.device_name_template
    if profile.language:
        fields["CloudAssignedLanguage"] = profile.language
        fields["CloudAssignedRegion"] = profile.language
    return fields


def configuration_file(profile):
    """The file's bytes: ASCII JSON."""
    return json.dumps(configuration(profile), indent=4, ensure_ascii=True).encode("ascii")
