"""Headers a client can forge (hardening): X-Forwarded-For, X-Forwarded-Proto and
X-SSL-Client-Cert are believed only from TRUSTED_PROXIES (mdmportal/proxies.py), by the address the
connection itself came from."""
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from management import commands
from mdmportal.proxies import client_address
from tests import omadm_messages as sml
from tests.enrollment_soap import discover_body, get_policies_body, service_url
from tests.factories import PASSWORD
from tests.factories_enrollment import certificate_header, certified_device, create_ca_chain

pytestmark = pytest.mark.django_db

PROXY = "127.0.0.1"  # in TRUSTED_PROXIES by default
STRANGER = "198.51.100.7"
LOGIN = reverse("invitations:login")


def sign_in(client, identity, password, **extra):
    return client.post(LOGIN, {"identity": identity, "password": password}, **extra)


@pytest.mark.parametrize("peer, forwarded, expected", [
    (PROXY, "203.0.113.9", "203.0.113.9"),
    (PROXY, "10.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own claim, left of nginx's entry, is ignored
    (PROXY, "203.0.113.9, 127.0.0.1", "203.0.113.9"),  # a second trusted hop (load balancer) is skipped
    (PROXY, "not-an-address", PROXY),
    (PROXY, "203.0.113.9, junk", PROXY),
    (STRANGER, "203.0.113.9", STRANGER),
])
def test_client_address_reads_forwarded_for_from_the_right_past_trusted_proxies(peer, forwarded, expected):
    assert client_address(peer, forwarded) == expected


def test_forwarded_for_from_an_untrusted_address_does_not_change_the_audited_address(client, organisation, alice):
    client.post(service_url(organisation, "policy"), get_policies_body(alice.email, "wrong"),
                content_type="application/soap+xml; charset=utf-8", secure=True,
                REMOTE_ADDR=STRANGER, HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert AuditEvent.objects.get(action="enrollment.refused").ip == STRANGER


def test_forwarded_for_from_the_proxy_is_the_audited_address(client, organisation, alice):
    client.post(service_url(organisation, "policy"), get_policies_body(alice.email, "wrong"),
                content_type="application/soap+xml; charset=utf-8", secure=True,
                REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="10.6.6.6, 203.0.113.9")
    assert AuditEvent.objects.get(action="enrollment.refused").ip == "203.0.113.9"


def test_rotating_forwarded_for_does_not_escape_the_address_lockout(client, organisation, alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for n in range(3):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR=STRANGER, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    response = sign_in(client, alice.email, "wrong", REMOTE_ADDR=STRANGER, HTTP_X_FORWARDED_FOR="10.0.0.99")
    assert response.status_code == 429


def test_behind_the_proxy_one_guessing_client_does_not_lock_out_the_others(client, organisation, alice, settings):
    """Every request reaches us from nginx's address: the address lockout must be the client's."""
    settings.AXES_FAILURE_LIMIT = 3
    for n in range(3):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert sign_in(client, "guess9@example.com", "wrong", REMOTE_ADDR=PROXY,
                   HTTP_X_FORWARDED_FOR="203.0.113.66").status_code == 429
    assert sign_in(client, alice.email, PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 302


@pytest.fixture
def pc(db):
    create_ca_chain()
    device, cert = certified_device(inventory_requested_at=timezone.now())
    commands.queue(device, "Exec", "./Device/Vendor/MSFT/Reboot/RebootNow", format="null")
    return device, cert


def management(client, device, cert, session="1", **extra):
    return client.post(sml.URL, sml.package1(device.device_id, session=session), content_type=sml.CONTENT_TYPE,
                       HTTP_X_SSL_CLIENT_CERT=certificate_header(cert), **extra)


def test_certificate_header_from_a_stranger_claiming_to_be_the_proxy_is_ignored_and_audited(client, pc):
    device, cert = pc
    reply = sml.read(management(client, device, cert, REMOTE_ADDR=STRANGER, HTTP_X_FORWARDED_FOR=PROXY).content)
    assert reply.header_status[4] == "407" and reply.commands == []  # challenged for a digest instead
    event = AuditEvent.objects.get(action="management.untrusted_certificate_header")
    assert (event.ip, event.detail["remote_addr"]) == (STRANGER, STRANGER)


def test_certificate_header_through_the_proxy_is_believed_and_the_client_address_recorded(client, pc):
    device, cert = pc
    reply = sml.read(management(client, device, cert, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.9").content)
    assert reply.header_status[4] == "200" and [c[0] for c in reply.commands] == ["Exec"]
    assert not AuditEvent.objects.filter(action="management.untrusted_certificate_header").exists()


def test_certificate_header_from_a_trusted_network_entry_is_believed(client, pc, settings):
    settings.TRUSTED_PROXIES = ["10.1.0.0/16"]
    device, cert = pc
    assert sml.read(management(client, device, cert, REMOTE_ADDR="10.1.2.3").content).header_status[4] == "200"
    assert sml.read(management(client, device, cert, "2", REMOTE_ADDR=PROXY).content).header_status[4] == "407"


def test_forged_forwarded_proto_from_a_stranger_does_not_skip_the_https_redirect(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(LOGIN, REMOTE_ADDR=STRANGER, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301 and response["Location"].startswith("https://")


def test_forwarded_proto_from_the_proxy_marks_the_request_secure(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(LOGIN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response.wsgi_request.is_secure()


def test_forged_host_headers_do_not_reach_the_device_replies(client, organisation):
    forged = client.post(service_url(organisation, "discovery"), discover_body(),
                         content_type="application/soap+xml; charset=utf-8", secure=True, HTTP_HOST="evil.example")
    assert forged.status_code == 400  # ALLOWED_HOSTS
    answered = client.post(service_url(organisation, "discovery"), discover_body(),
                           content_type="application/soap+xml; charset=utf-8", secure=True,
                           HTTP_X_FORWARDED_HOST="evil.example")
    assert answered.status_code == 200 and b"evil.example" not in answered.content
