"""One factory per model of the autopilot app."""
import base64
import hashlib

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from autopilot.models import (AppInstall, AutopilotDevice, AutopilotEnrollment, DeviceImport, DeviceImportChunk,
                              EssentialApp, GroupTagRule, ImportRow, Profile, ProvisioningItem)
from tests.factories_enrollment import DeviceFactory


def hardware_hash(n):
    """A base64 hardware hash unique to n (real ones are ~4 KB of binary; shape matters, not size)."""
    return base64.b64encode(hashlib.sha512(f"hardware {n}".encode()).digest() * 4).decode()


class ProfileFactory(DjangoModelFactory):
    class Meta:
        model = Profile
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Profile {n}")

    @factory.post_generation
    def configuration_groups(profile, create, groups, **kwargs):
        if create and groups:
            profile.configuration_groups.add(*groups)

    class Params:
        self_deploying = factory.Trait(deployment_mode=Profile.DeploymentMode.SELF_DEPLOYING)
        hololens = factory.Trait(device_type=Profile.DeviceType.HOLOLENS,
                                 deployment_mode=Profile.DeploymentMode.SELF_DEPLOYING)
        hybrid = factory.Trait(join_type=Profile.JoinType.HYBRID)
        default = factory.Trait(is_default=True)


class GroupTagRuleFactory(DjangoModelFactory):
    class Meta:
        model = GroupTagRule

    profile = factory.SubFactory(ProfileFactory)
    tag = factory.Sequence(lambda n: f"Tag-{n:02d}")


class EssentialAppFactory(DjangoModelFactory):
    class Meta:
        model = EssentialApp

    profile = factory.SubFactory(ProfileFactory)
    name = factory.Sequence(lambda n: f"App {n}")
    kind = EssentialApp.Kind.MSI
    msi_url = "https://apps.example.com/agent.msi"
    product_code = "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}"
    sha256 = "A" * 64

    class Params:
        store = factory.Trait(kind=EssentialApp.Kind.STORE, msi_url="", product_code="", sha256="",
                              store_id="9WZDNCRFJ3PZ", package_family_name="Microsoft.CompanyPortal_8wekyb3d8bbwe",
                              store_sku="0016")


class AutopilotDeviceFactory(DjangoModelFactory):
    class Meta:
        model = AutopilotDevice

    serial_number = factory.Sequence(lambda n: f"SN{n:08d}")
    serial_key = factory.LazyAttribute(lambda o: o.serial_number.upper())
    hardware_hash = factory.Sequence(hardware_hash)
    hardware_hash_digest = factory.LazyAttribute(
        lambda o: hashlib.sha256(base64.b64decode(o.hardware_hash)).hexdigest() if o.hardware_hash else "")


class DeviceImportFactory(DjangoModelFactory):
    class Meta:
        model = DeviceImport

    file_name = "devices.csv"

    class Params:
        done = factory.Trait(status=DeviceImport.Status.DONE)


class DeviceImportChunkFactory(DjangoModelFactory):
    class Meta:
        model = DeviceImportChunk

    device_import = factory.SubFactory(DeviceImportFactory)
    index = factory.Sequence(int)
    data = b"Device Serial Number\r\nSN1\r\n"


class ImportRowFactory(DjangoModelFactory):
    class Meta:
        model = ImportRow

    device_import = factory.SubFactory(DeviceImportFactory, done=True)
    line = factory.Sequence(lambda n: n + 2)
    serial_number = factory.Sequence(lambda n: f"SN{n:08d}")
    result = ImportRow.Result.CREATED


class AutopilotEnrollmentFactory(DjangoModelFactory):
    class Meta:
        model = AutopilotEnrollment

    device = factory.SubFactory(DeviceFactory)
    record = factory.SubFactory(AutopilotDeviceFactory)
    matched_by = AutopilotEnrollment.MatchedBy.SERIAL

    class Params:
        # Device setup over, the account setup (Store apps) waiting for a signed-in user.
        awaiting_user = factory.Trait(esp_state=AutopilotEnrollment.EspState.SUCCEEDED,
                                      user_esp_state=AutopilotEnrollment.EspState.TRACKING)


class AppInstallFactory(DjangoModelFactory):
    class Meta:
        model = AppInstall

    device = factory.SubFactory(DeviceFactory)
    app = factory.SubFactory(EssentialAppFactory)
    name = factory.LazyAttribute(lambda o: o.app.name)
    kind = factory.LazyAttribute(lambda o: o.app.kind)
    identifier = factory.LazyAttribute(lambda o: o.app.product_code or o.app.package_family_name)

    class Params:
        installed = factory.Trait(state=AppInstall.State.INSTALLED, reported_status="70")
        failed = factory.Trait(state=AppInstall.State.FAILED, reported_status="60", last_error="0x80070643")
        # Sent again after no progress; given up after its retries (stalled_at is then the completion).
        stalled = factory.Trait(state=AppInstall.State.STALLED, reported_status="50", attempts=2,
                                stalled_at=factory.LazyFunction(timezone.now))
        gave_up = factory.Trait(state=AppInstall.State.FAILED, reported_status="50", attempts=3,
                                stalled_at=factory.SelfAttribute("completed_at"),
                                completed_at=factory.LazyFunction(timezone.now))


class ProvisioningItemFactory(DjangoModelFactory):
    class Meta:
        model = ProvisioningItem

    enrollment = factory.SubFactory(AutopilotEnrollmentFactory, esp_state=AutopilotEnrollment.EspState.TRACKING)
    kind = ProvisioningItem.Kind.POLICY
    phase = ProvisioningItem.Phase.DEVICE
    key = "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE"
    label = "Require network in OOBE (TenantLockdown)"

    class Params:
        store_app = factory.Trait(kind=ProvisioningItem.Kind.MODERN, phase=ProvisioningItem.Phase.USER,
                                  key="Microsoft.CompanyPortal_8wekyb3d8bbwe", label="Company Portal")
