"""The Windows Configuration Designer project of a PIN enrollment (Provisioning CSP, Enrollments): a zip with
customizations.xml (what WCD saves for Runtime settings > Workplace > Enrollments > {UPN}), an
install script and a README on building the .ppkg and pushing it with SCCM or Ivanti EPM.

It holds the PIN in clear, which we never store: it is built only while the PIN is known, right
after creation or regeneration, or when an administrator types it again.

Names follow Microsoft's WCD reference (windows/configuration/wcd/wcd-workplace.md) and the
answer-file layout of its samples: root WindowsCustomizations, PackageConfig in the ICD
package-config namespace, Settings/Customizations/Common in the windows-provisioning namespace; the
enrollment is Workplace/Enrollments/UPN keyed by its UPN attribute, with AuthPolicy,
DiscoveryServiceFullUrl and Secret (the Provisioning CSP spells the URL node DiscoveryServiceFullURL;
WCD's setting is DiscoveryServiceFullUrl).
"""
import io
import uuid
import zipfile

from django.template.loader import render_to_string
from django.utils.text import slugify
from lxml import etree
from lxml.builder import ElementMaker

from . import ppkg

PACKAGE_CONFIG_NS = "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"
PROVISIONING_NS = "urn:schemas-microsoft-com:windows-provisioning"
ON_PREMISE = "OnPremise"
# Seeds the package ID: one stable ID per PIN enrollment, so a package rebuilt after a new PIN (a
# higher Version) replaces the old one on devices instead of sitting next to it.
PACKAGE_ID_NAMESPACE = uuid.UUID("6f1d4f36-3b0e-4c8f-9a57-0c2a9d0e5b71")

W = ElementMaker()
P = ElementMaker(namespace=PACKAGE_CONFIG_NS, nsmap={None: PACKAGE_CONFIG_NS})
C = ElementMaker(namespace=PROVISIONING_NS, nsmap={None: PROVISIONING_NS})


def package_id(pin_enrollment):
    return uuid.uuid5(PACKAGE_ID_NAMESPACE, f"{pin_enrollment.pk}:{pin_enrollment.upn}")


def package_name(pin_enrollment):
    return slugify(pin_enrollment.name)[:60] or f"pin-enrollment-{pin_enrollment.pk}"


def customizations(pin_enrollment, pin, *, discovery_url):
    """customizations.xml as bytes (UTF-8, with declaration)."""
    enrollment = C.UPN(
        C.AuthPolicy(ON_PREMISE),
        C.DiscoveryServiceFullUrl(discovery_url),
        C.Secret(pin),
        UPN=pin_enrollment.upn, Name=pin_enrollment.upn,
    )
    root = W.WindowsCustomizations(
        P.PackageConfig(
            P.ID("{%s}" % package_id(pin_enrollment)),
            P.Name(package_name(pin_enrollment)),
            P.Version(f"{pin_enrollment.pin_generation}.0"),
            P.OwnerType("ITAdmin"),
            P.Rank("0"),
            P.Notes(f"mdmportal bulk enrollment: {pin_enrollment.name} ({pin_enrollment.upn})"),
        ),
        C.Settings(C.Customizations(C.Common(C.Workplace(C.Enrollments(enrollment))))),
    )
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def project_zip(pin_enrollment, pin):
    """(file name, zip bytes) of the project folder."""
    name = package_name(pin_enrollment)
    url = ppkg.discovery_url()
    context = {"pin_enrollment": pin_enrollment, "package": name, "discovery_url": url}
    files = {
        "customizations.xml": customizations(pin_enrollment, pin, discovery_url=url),
        "install-ppkg.cmd": _crlf(render_to_string("enrollment/ppkg/install-ppkg.cmd", context)),
        "README.txt": _crlf(render_to_string("enrollment/ppkg/README.txt", context)),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, data in files.items():
            archive.writestr(f"{name}/{filename}", data)
    return f"{name}-wcd-project.zip", buffer.getvalue()


def _crlf(text):
    # Notepad and cmd.exe on the administrators' Windows machines expect CRLF line ends.
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
