"""Behind nginx: the client's address comes from X-Forwarded-For of a trusted proxy (mdmportal.proxies)."""
import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from management.models import ManagementSession
from tests import omadm_messages as sml
from tests.enrollment_soap import fault_of, get_policies_body, service_url
from tests.factories import UserFactory
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain

pytestmark = pytest.mark.django_db


def wrong_password(client, organisation, **extra):
    UserFactory(email="carol@example.com")
    response = client.post(service_url(organisation, "policy"), get_policies_body("carol@example.com", "wrong"),
                           content_type="application/soap+xml; charset=utf-8", secure=True, **extra)
    assert fault_of(response)[0] == "s:Authentication"
    return AuditEvent.objects.get(action="enrollment.refused")


def test_address_forwarded_by_the_proxy_is_the_clients(client, organisation):
    event = wrong_password(client, organisation, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert event.ip == "198.51.100.7"


def test_sign_in_lockout_counts_the_forwarded_address(client, organisation):
    from axes.models import AccessAttempt

    wrong_password(client, organisation, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert AccessAttempt.objects.get().ip_address == "198.51.100.7"


def test_address_header_from_a_client_that_is_not_a_proxy_is_ignored(client, organisation):
    event = wrong_password(client, organisation, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert event.ip == "203.0.113.5"


def test_proxy_networks_come_from_trusted_proxies(client, organisation, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    event = wrong_password(client, organisation, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert event.ip == "198.51.100.7"


def test_forwarded_value_that_is_not_an_address_is_ignored(client, organisation):
    event = wrong_password(client, organisation, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="not-an-address")
    assert event.ip == "127.0.0.1"


def test_certificate_forwarded_for_a_remote_device_is_still_believed_from_the_proxy(client):
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    response = client.post(sml.URL, sml.package1(device.device_id), content_type=sml.CONTENT_TYPE,
                           REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7",
                           HTTP_X_SSL_CLIENT_CERT=certificate_header(cert))
    assert sml.read(response.content).header_status[4] == "200"
    assert ManagementSession.objects.get(device=device).auth == ManagementSession.Auth.CERTIFICATE


def test_address_header_cannot_make_a_client_a_trusted_proxy(client):
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    response = client.post(sml.URL, sml.package1(device.device_id), content_type=sml.CONTENT_TYPE,
                           REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="127.0.0.1",
                           HTTP_X_SSL_CLIENT_CERT=certificate_header(cert))
    assert sml.read(response.content).header_status[4] == "407"
    assert AuditEvent.objects.get(action="management.untrusted_certificate_header").ip == "203.0.113.5"
