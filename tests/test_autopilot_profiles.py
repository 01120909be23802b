"""Autopilot profiles: the console form and its rules (HoloLens, device names, language), the offline
file checked field by field, and the profiles API."""
import json
import uuid

import pytest
from django.urls import reverse

from autopilot import naming, offline
from autopilot.models import GroupTagRule, Profile
from enrollment.models import EntraSettings
from tests.factories_autopilot import EssentialAppFactory, GroupTagRuleFactory, ProfileFactory
from tests.factories_enrollment import ConfigurationGroupFactory

pytestmark = pytest.mark.django_db

TENANT_ID = "1537de22-988c-4e93-b8a5-83890f34a69b"
TENANT_DOMAIN = "contoso.onmicrosoft.com"


def set_tenant():
    """The tenant is entered once, in the Entra ID settings."""
    EntraSettings.objects.update_or_create(pk=1, defaults={"tenant_ids": [TENANT_ID], "tenant_domain": TENANT_DOMAIN})


@pytest.fixture
def tenant(db):
    set_tenant()


def profile_form(**overrides):
    data = {
        "name": "Sales laptops", "description": "", "device_type": "windows_pc", "deployment_mode": "user_driven",
        "join_type": "entra", "user_account_type": "standard", "hide_eula": "on", "hide_privacy_settings": "on",
        "hide_change_account_options": "on", "language": "", "device_name_template": "",
        "esp_enabled": "on", "esp_timeout_minutes": "60", "esp_block_device": "on", "esp_allow_reset": "on",
        "esp_fail_on": "any", "app_stall_minutes": "20", "app_retry_count": "2", "app_stall_blocks": "on",
        "group_tags-TOTAL_FORMS": "0", "group_tags-INITIAL_FORMS": "0",
        "essential_apps-TOTAL_FORMS": "0", "essential_apps-INITIAL_FORMS": "0",
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def add_profile(client, **overrides):
    return client.post(reverse("admin:autopilot_profile_add"), profile_form(**overrides))


def form_errors(response):
    return response.context["adminform"].form.errors if response.status_code == 200 else {}


# --- console trio --------------------------------------------------------------------------------------

def test_profiles_page_redirects_anonymous_to_sign_in(client):
    response = client.get(reverse("admin:autopilot_profile_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_helpdesk_reads_profiles_but_cannot_add_one(client, helpdesk):
    ProfileFactory(name="Kiosks")
    client.force_login(helpdesk)
    assert b"Kiosks" in client.get(reverse("admin:autopilot_profile_changelist")).content
    assert add_profile(client).status_code == 403
    assert not Profile.objects.filter(name="Sales laptops").exists()


def test_enrollment_admin_adds_a_profile_with_group_tags_and_an_essential_app(client, enrollment_admin):
    sales, laptops = ConfigurationGroupFactory(name="Sales"), ConfigurationGroupFactory(name="Laptops")
    client.force_login(enrollment_admin)
    response = add_profile(client, **{
        "group_tags-TOTAL_FORMS": "2", "group_tags-0-tag": "Sales-01", "group_tags-1-tag": "Sales-02",
        "essential_apps-TOTAL_FORMS": "1", "essential_apps-0-name": "Agent", "essential_apps-0-kind": "msi",
        "essential_apps-0-msi_url": "https://apps.contoso.com/agent.msi",
        "essential_apps-0-product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}",
        "essential_apps-0-sha256": "ab" * 32, "essential_apps-0-version": "2.1.0",
        "essential_apps-0-command_line": "/quiet", "configuration_groups": [sales.pk, laptops.pk],
    })
    assert response.status_code == 302, form_errors(response)
    profile = Profile.objects.get(name="Sales laptops")
    assert sorted(profile.group_tags.values_list("tag", flat=True)) == ["Sales-01", "Sales-02"]
    assert profile.essential_apps.get().sha256 == "AB" * 32
    assert set(profile.configuration_groups.all()) == {sales, laptops}
    assert profile.block_in_status_page == 1  # blocking, "Reset device" offered on failure


def test_an_msi_url_typed_without_a_scheme_is_taken_as_https(client, enrollment_admin):
    client.force_login(enrollment_admin)
    response = add_profile(client, **{
        "essential_apps-TOTAL_FORMS": "1", "essential_apps-0-name": "Agent", "essential_apps-0-kind": "msi",
        "essential_apps-0-msi_url": "apps.contoso.com/agent.msi",
        "essential_apps-0-product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}",
        "essential_apps-0-sha256": "ab" * 32, "essential_apps-0-version": "2.1.0",
        "essential_apps-0-command_line": "/quiet",
    })
    assert response.status_code == 302, form_errors(response)
    assert Profile.objects.get(name="Sales laptops").essential_apps.get().msi_url == "https://apps.contoso.com/agent.msi"


# --- rules -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field, message", [
    ({"device_type": "hololens2"}, "deployment_mode", "HoloLens 2 profiles must be self-deploying"),
    ({"device_type": "hololens2", "deployment_mode": "self_deploying", "join_type": "hybrid"}, "join_type",
     "HoloLens 2 can only join Microsoft Entra ID"),
    ({"device_type": "hololens2", "deployment_mode": "self_deploying", "allow_pre_provisioning": "on"},
     "allow_pre_provisioning", "does not support pre-provisioned"),
    ({"deployment_mode": "self_deploying", "join_type": "hybrid"}, "join_type", "Entra join only"),
    ({"language": "english"}, "language", "locale such as en-US"),
    ({"configure_keyboard": "on"}, "configure_keyboard", "when the language is set"),
    ({"join_type": "hybrid", "device_name_template": "CORP-%SERIAL%"}, "device_name_template",
     "domain join configuration"),
    ({"esp_allow_reset": None}, "esp_allow_reset", "needs a way out"),
    ({"esp_timeout_minutes": "1441"}, "esp_timeout_minutes", "less than or equal to 1440"),
    ({"app_stall_minutes": "10"}, "app_stall_minutes", "at least 15"),
    ({"app_retry_count": "11"}, "app_retry_count", "less than or equal to 10"),
])
def test_profile_rules_are_clear_form_errors(console, overrides, field, message):
    response = add_profile(console, **overrides)
    assert response.status_code == 200
    assert message in " ".join(form_errors(response)[field])
    assert not Profile.objects.exists()


def test_a_hololens_profile_is_self_deploying_and_entra_joined(console):
    response = add_profile(console, name="HoloLens", device_type="hololens2", deployment_mode="self_deploying")
    assert response.status_code == 302, form_errors(response)
    assert Profile.objects.get().device_type == "hololens2"


STORE_APP_FORM = {
    "essential_apps-TOTAL_FORMS": "1", "essential_apps-0-name": "Company Portal", "essential_apps-0-kind": "store",
    "essential_apps-0-store_id": "9WZDNCRFJ3PZ",
    "essential_apps-0-package_family_name": "Microsoft.CompanyPortal_8wekyb3d8bbwe",
    "essential_apps-0-store_sku": "000n", "essential_apps-0-version": "1.0.0", "essential_apps-0-command_line": "/quiet",
}
NO_USER = "a self-deploying profile has no user"


def inline_errors(response, prefix="essential_apps"):
    formset = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == prefix).formset
    return [form.errors for form in formset.forms]


def test_a_user_driven_profile_takes_a_store_app_with_its_sku(console):
    response = add_profile(console, **STORE_APP_FORM, **{"essential_apps-0-store_claim_seat": "on"})
    assert response.status_code == 302, form_errors(response)
    app = Profile.objects.get().essential_apps.get()
    assert (app.store_id, app.store_sku, app.store_claim_seat) == ("9WZDNCRFJ3PZ", "000N", True)


@pytest.mark.parametrize("overrides", [
    {"deployment_mode": "self_deploying"},
    {"device_type": "hololens2", "deployment_mode": "self_deploying"},
])
def test_a_self_deploying_profile_refuses_a_store_app(console, overrides):
    response = add_profile(console, **STORE_APP_FORM, **overrides)
    assert response.status_code == 200
    assert NO_USER in " ".join(inline_errors(response)[0]["kind"])
    assert not Profile.objects.exists()


def test_a_profile_with_store_apps_cannot_become_self_deploying(console):
    profile = ProfileFactory(name="Sales laptops")
    app = EssentialAppFactory(profile=profile, store=True)
    data = profile_form(deployment_mode="self_deploying", **{
        "essential_apps-TOTAL_FORMS": "1", "essential_apps-INITIAL_FORMS": "1", "essential_apps-0-id": str(app.pk),
        "essential_apps-0-profile": str(profile.pk), "essential_apps-0-name": app.name, "essential_apps-0-kind": "store",
        "essential_apps-0-store_id": app.store_id, "essential_apps-0-package_family_name": app.package_family_name,
        "essential_apps-0-store_sku": "0016", "essential_apps-0-version": "1.0.0",
        "essential_apps-0-command_line": "/quiet"})
    response = console.post(reverse("admin:autopilot_profile_change", args=[profile.pk]), data)
    assert response.status_code == 200
    assert NO_USER in " ".join(form_errors(response)["deployment_mode"])
    assert NO_USER in " ".join(inline_errors(response)[0]["kind"])
    profile.refresh_from_db()
    assert profile.deployment_mode == "user_driven"


def test_a_second_default_profile_is_refused(console):
    ProfileFactory(name="Everyone", default=True)
    response = add_profile(console, is_default="on")
    assert response.status_code == 200
    assert "already the default profile" in str(response.context["adminform"].form.non_field_errors())


def test_a_group_tag_can_lead_to_one_profile_only(console):
    GroupTagRuleFactory(tag="Sales-01")
    response = add_profile(console, **{"group_tags-TOTAL_FORMS": "1", "group_tags-0-tag": "sales-01"})
    assert response.status_code == 200
    assert "already leads to another profile" in response.content.decode()
    assert GroupTagRule.objects.count() == 1


@pytest.mark.parametrize("template, message", [
    ("CONTOSO-LAPTOP-01", "17 characters once expanded"),
    ("LAB-%RAND:12%", "16 characters once expanded"),
    ("CONTOSO-LAPTOPS%SERIAL%", "%SERIAL% needs room"),
    ("PC_%SERIAL%", "only letters, digits and hyphens, not '_'"),
    ("PC %SERIAL%", "cannot contain spaces"),
    ("12345", "cannot be only digits"),
    ("%RAND:6%", "cannot be only digits"),
    ("12%RAND:4%", "cannot be only digits"),
    ("PC-%USER%", "Unknown macro %USER%"),
    ("%SERIAL%-%SERIAL%", "at most once"),
    ("PC-%RAND:0%", "at least one digit"),
    ("PC-50%", "must open a macro"),
])
def test_device_name_templates_are_checked_with_a_clear_message(console, template, message):
    response = add_profile(console, device_name_template=template)
    assert response.status_code == 200
    assert message in " ".join(form_errors(response)["device_name_template"])


@pytest.mark.parametrize("template", ["CORP-%SERIAL%", "%SERIAL%", "LAB-%RAND:4%", "SALES%RAND:3%-%SERIAL%", "123-X"])
def test_valid_device_name_templates_are_accepted(console, template):
    response = add_profile(console, device_name_template=template)
    assert response.status_code == 302, form_errors(response)


def test_name_templates_expand_to_at_most_15_characters_cutting_the_serial():
    name = naming.expand("CORP-%SERIAL%", "5CG1234567ABCDEF")
    assert name == "CORP-5CG1234567" and len(name) == 15
    assert naming.expand("LAB-%RAND:4%", "X", rand=lambda n: "7" * n) == "LAB-7777"
    assert naming.expand("S%RAND:2%-%SERIAL%", "VMware-56 4d", rand=lambda n: "1" * n) == "S11-VMware-564d"


# --- the offline file ----------------------------------------------------------------------------------

def download(client, profile):
    return client.get(reverse("admin:autopilot_profile_offline_file", args=[profile.pk]))


def test_offline_file_has_every_field_of_the_format(console, tenant):
    profile = ProfileFactory(name="Sales laptops", language="fr-FR", configure_keyboard=True,
                             device_name_template="SALES-%SERIAL%", hide_change_account_options=True)
    response = download(console, profile)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="AutopilotConfigurationFile.json"'
    response.content.decode("ascii")  # the format demands ASCII
    data = json.loads(response.content)
    assert data == {
        "Comment_File": "Profile Sales laptops",
        "Version": 2049,
        "ZtdCorrelationId": str(profile.ztd_correlation_id),
        "CloudAssignedTenantId": TENANT_ID,
        "CloudAssignedTenantDomain": TENANT_DOMAIN,
        "CloudAssignedAadServerData": json.dumps({"ZeroTouchConfig": {
            "CloudAssignedTenantUpn": "", "ForcedEnrollment": 1, "CloudAssignedTenantDomain": TENANT_DOMAIN}},
            separators=(",", ":")),
        "CloudAssignedOobeConfig": 8 + 256 + 2 + 4 + 16 + 1024,
        "CloudAssignedDomainJoinMethod": 0,
        "CloudAssignedForcedEnrollment": 1,
        "CloudAssignedAutopilotUpdateDisabled": 1,
        "CloudAssignedAutopilotUpdateTimeout": 1800000,
        "CloudAssignedDeviceName": "SALES-%SERIAL%",
        "CloudAssignedLanguage": "fr-FR",
        "CloudAssignedRegion": "fr-FR",
    }
    uuid.UUID(data["ZtdCorrelationId"])


def test_offline_file_of_a_hybrid_profile_with_os_default_language(console, tenant):
    profile = ProfileFactory(hybrid=True, hide_change_account_options=False, autopilot_update_during_oobe=True)
    data = json.loads(download(console, profile).content)
    assert data["CloudAssignedDomainJoinMethod"] == 1
    assert data["CloudAssignedForcedEnrollment"] == 0
    assert json.loads(data["CloudAssignedAadServerData"])["ZeroTouchConfig"]["ForcedEnrollment"] == 0
    assert data["CloudAssignedAutopilotUpdateDisabled"] == 0
    for absent in ("CloudAssignedLanguage", "CloudAssignedRegion", "CloudAssignedDeviceName"):
        assert absent not in data


def test_offline_file_correlation_id_is_stable_per_profile(console, tenant):
    profile, other = ProfileFactory(), ProfileFactory()
    first = json.loads(download(console, profile).content)["ZtdCorrelationId"]
    profile.name = "Renamed"
    profile.save()
    assert json.loads(download(console, profile).content)["ZtdCorrelationId"] == first
    assert json.loads(download(console, other).content)["ZtdCorrelationId"] != first


def test_offline_file_escapes_non_ascii_names(console, tenant):
    profile = ProfileFactory(name="Équipe Zürich")
    response = download(console, profile)
    assert response.content.isascii()
    assert json.loads(response.content)["Comment_File"] == "Profile Équipe Zürich"


BASE = offline.SKIP_OEM_REGISTRATION | offline.SKIP_WINDOWS_UPGRADE_UX
PLAIN = {"user_account_type": "administrator", "hide_eula": False, "hide_privacy_settings": False}


@pytest.mark.parametrize("settings_, bit", [
    ({"user_account_type": "standard"}, 2),
    ({"hide_privacy_settings": True}, 4),
    ({"hide_eula": True}, 16),
    ({"language": "en-US", "configure_keyboard": True}, 1024),
    ({"autopilot_update_during_oobe": True}, 512),
    ({"allow_pre_provisioning": True}, 128),
    ({"deployment_mode": "self_deploying"}, 32 | 64 | 128),
])
def test_each_oobe_config_bit_follows_its_setting(settings_, bit):
    plain = ProfileFactory.build(**PLAIN)
    assert offline.oobe_config(plain) == BASE == 8 + 256
    assert offline.oobe_config(ProfileFactory.build(**{**PLAIN, **settings_})) == BASE | bit


def test_language_without_keyboard_sets_no_keyboard_bit():
    assert not offline.oobe_config(ProfileFactory.build(**PLAIN, language="en-US")) & 1024


def test_offline_file_without_a_tenant_leads_to_where_it_is_entered_and_then_works(console):
    profile = ProfileFactory()
    response = download(console, profile)
    assert response.status_code == 302
    html = console.get(response.url).content.decode()
    assert '<a href="/admin/enrollment/entrasettings/">Enter them in the Entra ID settings.</a>' in html
    assert "AUTOPILOT_TENANT" not in html

    # Entered there once (Entra ID enrollment itself stays off)...
    settings_page = console.get("/admin/enrollment/entrasettings/", follow=True)
    saved = console.post(settings_page.redirect_chain[-1][0], {
        "tenant_ids_text": TENANT_ID.upper(), "tenant_domain": "Contoso.onmicrosoft.com.", "audiences_text": "",
        "domains_text": "", "jwks_mirror_url": "", "terms_text": ""})
    assert saved.status_code == 302
    # ...the offline file names it, and the Microsoft Graph connection signs in to it.
    response = download(console, profile)
    assert response.status_code == 200
    fields = json.loads(response.content)
    assert (fields["CloudAssignedTenantId"], fields["CloudAssignedTenantDomain"]) == (TENANT_ID, TENANT_DOMAIN)
    from autopilot.graph_models import GraphConnector
    assert GraphConnector.get().token_url == f"https://login.microsoftonline.com/{TENANT_ID}/oauth2/v2.0/token"


def test_offline_file_refuses_anonymous(client, tenant):
    response = download(client, ProfileFactory())
    assert response.status_code == 302 and "login" in response.url


def test_helpdesk_downloads_the_offline_file(client, helpdesk, tenant):
    client.force_login(helpdesk)
    assert download(client, ProfileFactory()).status_code == 200


# --- API -----------------------------------------------------------------------------------------------

API = "/api/v1/autopilot/profiles/"


def test_api_creates_a_profile_with_tags_and_groups(enrollment_api):
    kiosk_apps = ConfigurationGroupFactory(name="Kiosk apps")
    response = enrollment_api.post(API, {
        "name": "Kiosks", "device_type": "windows_pc", "deployment_mode": "self_deploying", "tenant_lockdown": True,
        "group_tags": ["Kiosk", " kiosk ", "Lobby"], "configuration_groups": ["Kiosk apps"],
        "device_name_template": "KIOSK-%RAND:4%",
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["group_tags"] == ["Kiosk", "Lobby"]
    assert body["configuration_groups"] == ["Kiosk apps"]
    assert body["tenant_lockdown"] is True
    assert list(Profile.objects.get(name="Kiosks").configuration_groups.all()) == [kiosk_apps]
    uuid.UUID(body["ztd_correlation_id"])


def test_api_names_an_unknown_configuration_group_and_saves_nothing(enrollment_api):
    response = enrollment_api.post(API, {"name": "Kiosks", "configuration_groups": ["No such group"]}, format="json")
    assert response.status_code == 400
    assert "No such group" in response.json()["configuration_groups"][0]
    assert not Profile.objects.exists()


def test_api_sets_the_status_page_and_refuses_a_blocking_page_without_a_way_out(enrollment_api):
    profile = ProfileFactory()
    response = enrollment_api.patch(f"{API}{profile.pk}/", {"esp_timeout_minutes": 90, "esp_allow_retry": True},
                                    format="json")
    assert response.status_code == 200, response.json()
    profile.refresh_from_db()
    assert (profile.esp_timeout_minutes, profile.block_in_status_page) == (90, 0b011)
    response = enrollment_api.patch(f"{API}{profile.pk}/", {"esp_allow_reset": False, "esp_allow_retry": False},
                                    format="json")
    assert response.status_code == 400 and "esp_allow_reset" in response.json()


def test_api_refuses_a_user_driven_hololens_profile(enrollment_api):
    response = enrollment_api.post(API, {"name": "HL", "device_type": "hololens2", "deployment_mode": "user_driven"},
                                   format="json")
    assert response.status_code == 400
    assert "must be self-deploying" in response.json()["deployment_mode"][0]


def test_api_refuses_a_bad_name_template_and_a_taken_tag(enrollment_api):
    GroupTagRuleFactory(tag="Sales-01")
    response = enrollment_api.post(API, {"name": "X", "group_tags": ["SALES-01"]}, format="json")
    assert response.status_code == 400
    assert "Sales-01" in response.json()["group_tags"][0]
    response = enrollment_api.post(API, {"name": "X", "device_name_template": "TOO-LONG-NAME-123"}, format="json")
    assert response.status_code == 400
    assert "17 characters" in response.json()["device_name_template"][0]
    assert not Profile.objects.filter(name="X").exists()


def test_api_updates_tags_and_keeps_the_correlation_id(enrollment_api):
    profile = ProfileFactory()
    GroupTagRuleFactory(profile=profile, tag="Old")
    response = enrollment_api.patch(f"{API}{profile.pk}/", {"group_tags": ["New"], "hide_eula": False}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["group_tags"] == ["New"]
    assert response.json()["ztd_correlation_id"] == str(profile.ztd_correlation_id)


def test_api_helpdesk_reads_but_cannot_write_profiles(helpdesk_api):
    profile = ProfileFactory()
    EssentialAppFactory(profile=profile, store=True)
    listing = helpdesk_api.get(API)
    assert listing.status_code == 200
    assert listing.json()["results"][0]["essential_apps"][0]["store_id"] == "9WZDNCRFJ3PZ"
    assert helpdesk_api.post(API, {"name": "X"}, format="json").status_code == 403
    assert helpdesk_api.delete(f"{API}{profile.pk}/").status_code == 403


def test_api_offline_file_download_and_missing_tenant(enrollment_api):
    profile = ProfileFactory()
    missing = enrollment_api.get(f"{API}{profile.pk}/offline-file/")
    assert missing.status_code == 409 and "Entra ID settings" in missing.json()["detail"]
    set_tenant()
    response = enrollment_api.get(f"{API}{profile.pk}/offline-file/")
    assert response.status_code == 200
    assert json.loads(response.content)["ZtdCorrelationId"] == str(profile.ztd_correlation_id)


@pytest.mark.parametrize("app, field", [
    ({"kind": "msi", "msi_url": "http://apps.example.com/a.msi", "product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}",
      "sha256": "a" * 64}, "msi_url"),
    ({"kind": "msi", "msi_url": "https://apps.example.com/a.msi", "product_code": "9BE6A8D4", "sha256": "a" * 64},
     "product_code"),
    ({"kind": "msi", "msi_url": "https://apps.example.com/a.msi",
      "product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}", "sha256": "xyz"}, "sha256"),
    ({"kind": "store", "store_id": "not a store id", "package_family_name": "Microsoft.CompanyPortal_8wekyb3d8bbwe"},
     "store_id"),
    ({"kind": "store", "store_id": "9WZDNCRFJ3PZ"}, "package_family_name"),
    ({"kind": "msi", "msi_url": "https://apps.example.com/a.msi", "product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}",
      "sha256": "a" * 64, "version": "latest"}, "version"),
])
def test_api_essential_apps_are_checked(enrollment_api, app, field):
    profile = ProfileFactory()
    response = enrollment_api.post("/api/v1/autopilot/essential-apps/", {"profile": profile.pk, "name": "A", **app},
                                   format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_api_refuses_an_msi_app_for_a_hololens_profile(enrollment_api):
    profile = ProfileFactory(hololens=True)
    response = enrollment_api.post("/api/v1/autopilot/essential-apps/", {
        "profile": profile.pk, "name": "Agent", "kind": "msi", "msi_url": "https://apps.example.com/a.msi",
        "product_code": "{9BE6A8D4-1F2E-4C3B-8A9D-0E1F2A3B4C5D}", "sha256": "a" * 64}, format="json")
    assert response.status_code == 400 and "UWP/MSIX" in response.json()["kind"][0]
    assert not profile.essential_apps.exists()


def test_api_adds_a_store_app(enrollment_api):
    profile = ProfileFactory()
    response = enrollment_api.post("/api/v1/autopilot/essential-apps/", {
        "profile": profile.pk, "name": "Company Portal", "kind": "store", "store_id": "9WZDNCRFJ3PZ",
        "package_family_name": "Microsoft.CompanyPortal_8wekyb3d8bbwe"}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["store_sku"], response.json()["store_claim_seat"]) == ("0016", False)
    app = profile.essential_apps.get()
    assert (app.name, app.store_id, app.package_family_name, app.store_sku) == (
        "Company Portal", "9WZDNCRFJ3PZ", "Microsoft.CompanyPortal_8wekyb3d8bbwe", "0016")


@pytest.mark.parametrize("sku", ["16", "00-6", "00160"])
def test_api_refuses_a_store_sku_that_is_not_four_letters_or_digits(enrollment_api, sku):
    response = enrollment_api.post("/api/v1/autopilot/essential-apps/", {
        "profile": ProfileFactory().pk, "name": "Company Portal", "kind": "store", "store_id": "9WZDNCRFJ3PZ",
        "package_family_name": "Microsoft.CompanyPortal_8wekyb3d8bbwe", "store_sku": sku}, format="json")
    assert response.status_code == 400 and "store_sku" in response.json()


def test_api_refuses_a_store_app_for_a_self_deploying_profile(enrollment_api):
    profile = ProfileFactory(self_deploying=True)
    response = enrollment_api.post("/api/v1/autopilot/essential-apps/", {
        "profile": profile.pk, "name": "Company Portal", "kind": "store", "store_id": "9WZDNCRFJ3PZ",
        "package_family_name": "Microsoft.CompanyPortal_8wekyb3d8bbwe"}, format="json")
    assert response.status_code == 400 and NO_USER in response.json()["kind"][0]
    assert not profile.essential_apps.exists()


def test_api_refuses_to_make_a_profile_with_store_apps_self_deploying(enrollment_api):
    profile = ProfileFactory()
    EssentialAppFactory(profile=profile, store=True)
    response = enrollment_api.patch(f"{API}{profile.pk}/", {"deployment_mode": "self_deploying"}, format="json")
    assert response.status_code == 400 and NO_USER in response.json()["deployment_mode"][0]
    profile.refresh_from_db()
    assert profile.deployment_mode == "user_driven"


@pytest.mark.parametrize("environment, warned", [({}, False), ({"AUTOPILOT_TENANT_ID": TENANT_ID}, True)])
def test_the_retired_tenant_variables_are_reported(monkeypatch, environment, warned):
    from autopilot.checks import check_retired_tenant_variables

    for name in ["AUTOPILOT_TENANT_ID", "AUTOPILOT_TENANT_DOMAIN"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert [message.id for message in check_retired_tenant_variables(None)] == (["autopilot.W001"] if warned else [])
