"""The Windows Configuration Designer project of a PIN enrollment, parsed back."""
import io
import uuid
import zipfile

import pytest
from lxml import etree

from enrollment import ppkg, wcd
from tests.factories_enrollment import PPKG_PIN, PinEnrollmentFactory

pytestmark = pytest.mark.django_db

PACKAGE_NS = "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"
SETTINGS_NS = "urn:schemas-microsoft-com:windows-provisioning"
NS = {"p": PACKAGE_NS, "w": SETTINGS_NS}


@pytest.fixture
def package(alice, organisation):
    organisation.enrollment_base_url = "https://enterpriseenrollment.contoso.com"
    organisation.save()
    return PinEnrollmentFactory(name="Lab PCs & kiosks", upn="enroll-lab@contoso.com", owner=alice, max_devices=40)


def unzip(package, pin=PPKG_PIN):
    filename, data = wcd.project_zip(package, pin)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return filename, {name: archive.read(name) for name in archive.namelist()}


def test_project_holds_the_customizations_an_install_script_and_a_readme(package):
    filename, files = unzip(package)
    assert filename == "lab-pcs-kiosks-wcd-project.zip"
    assert set(files) == {"lab-pcs-kiosks/customizations.xml", "lab-pcs-kiosks/install-ppkg.cmd",
                          "lab-pcs-kiosks/README.txt"}


def test_customizations_enroll_on_premise_with_the_upn_and_pin(package):
    _name, files = unzip(package, pin="K7Q2M-<&>\"-XXXXX-YYYYY")
    root = etree.fromstring(files["lab-pcs-kiosks/customizations.xml"])

    assert root.tag == "WindowsCustomizations"
    enrollments = root.findall("w:Settings/w:Customizations/w:Common/w:Workplace/w:Enrollments/w:UPN", NS)
    assert len(enrollments) == 1
    upn = enrollments[0]
    assert upn.get("UPN") == upn.get("Name") == "enroll-lab@contoso.com"
    assert [etree.QName(child).localname for child in upn] == ["AuthPolicy", "DiscoveryServiceFullUrl", "Secret"]
    assert upn.findtext("w:AuthPolicy", namespaces=NS) == "OnPremise"
    assert upn.findtext("w:DiscoveryServiceFullUrl", namespaces=NS) == \
        "https://enterpriseenrollment.contoso.com/EnrollmentServer/Discovery.svc"
    assert upn.findtext("w:Secret", namespaces=NS) == "K7Q2M-<&>\"-XXXXX-YYYYY"


def test_package_keeps_its_id_and_raises_its_version_with_a_new_pin(package):
    def package_config(pin):
        _name, files = unzip(package, pin)
        root = etree.fromstring(files["lab-pcs-kiosks/customizations.xml"])
        config = root.find("p:PackageConfig", NS)
        return {etree.QName(child).localname: child.text for child in config}

    first = package_config(PPKG_PIN)
    new_pin = ppkg.regenerate(package)
    second = package_config(new_pin)

    uuid.UUID(first["ID"].strip("{}"))
    assert first["ID"] == second["ID"]
    assert (first["Version"], second["Version"]) == ("1.0", "2.0")
    assert first["OwnerType"] == "ITAdmin" and first["Name"] == "lab-pcs-kiosks"
    assert wcd.package_id(PinEnrollmentFactory(owner=package.owner)) != wcd.package_id(package)


def test_readme_has_the_build_command_and_distribution_steps(package):
    _name, files = unzip(package)
    readme = files["lab-pcs-kiosks/README.txt"].decode()
    assert "\r\n" in readme
    assert ("icd.exe /Build-ProvisioningPackage /CustomizationXML:customizations.xml "
            "/PackagePath:lab-pcs-kiosks.ppkg") in readme
    for text in ("Configuration Manager", "Install-ProvisioningPackage", "-QuietInstall", "Ivanti", "HoloLens",
                 "enroll-lab@contoso.com", "Lab PCs & kiosks", "alice@example.com"):
        assert text in readme, text
    assert PPKG_PIN not in readme
    script = files["lab-pcs-kiosks/install-ppkg.cmd"].decode()
    assert 'DISM.exe /Online /Add-ProvisioningPackage /PackagePath:"%~dp0lab-pcs-kiosks.ppkg"' in script
