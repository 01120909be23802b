"""Names of Windows releases and editions, from what devices report: DevDetail/SwV ("10.0.22631.4460",
the build being the third part) and DeviceStatus/OS/Edition (the SKU number of GetProductInfo).

Builds: Microsoft's "Windows 10 release information" and "Windows 11 release information" pages.
Editions: the PRODUCT_* values of GetProductInfo (sysinfoapi.h, "GetProductInfo function").
"""
from django.utils.translation import gettext as _

WINDOWS_10 = {10240: "1507", 10586: "1511", 14393: "1607", 15063: "1703", 16299: "1709", 17134: "1803",
              17763: "1809", 18362: "1903", 18363: "1909", 19041: "2004", 19042: "20H2", 19043: "21H1",
              19044: "21H2", 19045: "22H2"}
WINDOWS_11 = {22000: "21H2", 22621: "22H2", 22631: "23H2", 26100: "24H2", 26200: "25H2"}
FIRST_WINDOWS_11_BUILD = 22000

HOLOGRAPHIC = {135, 136}  # PRODUCT_HOLOGRAPHIC, PRODUCT_HOLOGRAPHIC_BUSINESS

EDITIONS = {
    4: "Enterprise", 27: "Enterprise N", 48: "Pro", 49: "Pro N", 72: "Enterprise Evaluation", 98: "Home N",
    99: "Home China", 100: "Home Single Language", 101: "Home", 119: "Team", 121: "Education",
    122: "Education N", 125: "Enterprise LTSC", 126: "Enterprise N LTSC", 135: "Holographic",
    136: "Holographic for Business", 161: "Pro for Workstations", 162: "Pro N for Workstations",
    164: "Pro Education", 165: "Pro Education N", 171: "Enterprise G", 175: "Enterprise multi-session",
    188: "IoT Enterprise", 191: "IoT Enterprise LTSC",
}


def build_of(os_version):
    """The build number of "10.0.22631.4460", or None."""
    parts = (os_version or "").split(".")
    if len(parts) < 3 or not parts[2].isdigit():
        return None
    return int(parts[2])


def release_name(os_version, edition=None):
    """"Windows 11 23H2", "Windows 10 22H2", "Windows Holographic (20348)", "Windows (build 99999)"."""
    build = build_of(os_version)
    if build is None:
        return _("Not reported yet")
    if edition in HOLOGRAPHIC:
        return _("Windows Holographic (build %(build)s)") % {"build": build}
    if build in WINDOWS_11:
        return f"Windows 11 {WINDOWS_11[build]}"
    if build in WINDOWS_10:
        return f"Windows 10 {WINDOWS_10[build]}"
    if build >= FIRST_WINDOWS_11_BUILD:
        return _("Windows 11 (build %(build)s)") % {"build": build}
    return _("Windows (build %(build)s)") % {"build": build}


def edition_name(edition):
    if edition is None:
        return _("Not reported yet")
    name = EDITIONS.get(edition)
    return name if name else _("Edition %(number)s") % {"number": edition}
