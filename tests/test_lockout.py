"""Growing lockout (accounts/lockout.py on django-axes): 30 s after six failures, twice as long at
each further lockout, capped; on every endpoint that takes a password or a PIN; audited; a locked
account gets the same answer whether the secret was right or not. Time is frozen, never slept."""
from datetime import timedelta
from unittest import mock

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccountLockout, AuditEvent
from enrollment import auth
from tests.enrollment_soap import fault_of, get_policies_body, parse, post, service_url
from tests.factories import PASSWORD, AccountLockoutFactory
from tests.factories_enrollment import RegistrationPinFactory

pytestmark = pytest.mark.django_db

APPRU = "ms-app://windows.immersivecontrolpanel"


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    """Django's and axes' time source (axes stamps attempts with its own `now` import)."""
    frozen = Clock()
    with mock.patch("django.utils.timezone.now", lambda: frozen.now), \
            mock.patch("axes.handlers.proxy.now", lambda: frozen.now):
        yield frozen


def get_policies(client, organisation, secret, username="alice@example.com"):
    return post(client, service_url(organisation, "policy"), get_policies_body(username, secret))


def fail(client, organisation, times, secret="wrong password"):
    return [fault_of(get_policies(client, organisation, secret))[1] for _ in range(times)]


def lockouts():
    return list(AuditEvent.objects.filter(action="account.locked_out").order_by("pk")
                .values_list("detail__lockout", "detail__seconds"))


def test_six_failures_lock_the_account_for_thirty_seconds(client, organisation, alice, clock):
    reasons = fail(client, organisation, 6)
    assert reasons == [auth.BAD_CREDENTIALS] * 5 + [auth.LOCKED_OUT]

    clock.advance(29)
    subcode, reason, _type = fault_of(get_policies(client, organisation, PASSWORD))
    assert (subcode, reason) == ("s:Authentication", auth.LOCKED_OUT)
    assert "try again later" in reason

    clock.advance(2)
    parse(get_policies(client, organisation, PASSWORD))
    assert lockouts() == [(1, 30)]
    event = AuditEvent.objects.get(action="account.locked_out")
    assert event.target_id == str(alice.pk) and event.ip == "127.0.0.1"


def test_each_further_lockout_lasts_twice_as_long(client, organisation, alice, clock):
    fail(client, organisation, 6)
    clock.advance(31)
    assert fail(client, organisation, 6)[-1] == auth.LOCKED_OUT

    clock.advance(59)
    assert fault_of(get_policies(client, organisation, PASSWORD))[1] == auth.LOCKED_OUT
    clock.advance(2)
    fail(client, organisation, 6)
    clock.advance(119)
    assert fault_of(get_policies(client, organisation, PASSWORD))[1] == auth.LOCKED_OUT
    clock.advance(2)
    parse(get_policies(client, organisation, PASSWORD))

    assert lockouts() == [(1, 30), (2, 60), (3, 120)]


def test_lockouts_stop_growing_at_the_cap(client, organisation, alice, clock, settings):
    settings.SIGNIN_LOCKOUT_MAX_SECONDS = 45
    fail(client, organisation, 6)
    clock.advance(31)
    fail(client, organisation, 6)
    clock.advance(46)
    parse(get_policies(client, organisation, PASSWORD))
    assert lockouts() == [(1, 30), (2, 45)]


def test_a_complete_success_starts_the_doubling_again(client, organisation, alice, clock):
    fail(client, organisation, 6)
    clock.advance(31)
    parse(get_policies(client, organisation, PASSWORD))
    assert not AccountLockout.objects.exists()

    fail(client, organisation, 6)
    assert lockouts() == [(1, 30), (1, 30)]


def test_the_doubling_starts_again_after_a_quiet_day(client, organisation, alice, clock, settings):
    AccountLockoutFactory(account=alice.email, lockouts=5, locked_at=clock.now - timedelta(hours=25),
                          locked_until=clock.now - timedelta(hours=25))
    fail(client, organisation, 6)
    assert lockouts() == [(1, 30)]


def test_attempts_during_a_lockout_neither_extend_nor_count_it(client, organisation, alice, clock):
    fail(client, organisation, 6)
    clock.advance(20)
    fail(client, organisation, 3)
    clock.advance(11)
    parse(get_policies(client, organisation, PASSWORD))
    assert lockouts() == [(1, 30)]


def test_another_accounts_longer_lockout_is_not_cut_short(client, organisation, alice, bob, clock):
    AccountLockoutFactory(account=bob.email, lockouts=2, locked_at=clock.now, locked_until=clock.now)
    for _ in range(6):
        get_policies(client, organisation, "wrong", username=bob.email)  # bob's third lockout: 120 s
    clock.advance(40)
    fail(client, organisation, 1)  # alice's failure cleans attempts older than *her* interval
    assert fault_of(get_policies(client, organisation, PASSWORD, username=bob.email))[1] == auth.LOCKED_OUT


def test_failures_spread_over_accounts_lock_the_address_not_the_accounts(client, organisation, alice, clock):
    for n in range(6):
        get_policies(client, organisation, "wrong", username=f"nobody{n}@example.com")
    assert fault_of(get_policies(client, organisation, PASSWORD))[1] == auth.LOCKED_OUT
    assert AuditEvent.objects.filter(action="address.locked_out", ip="127.0.0.1").count() == 1
    assert lockouts() == [] and not AccountLockout.objects.filter(account=alice.email).exists()
    clock.advance(31)
    parse(get_policies(client, organisation, PASSWORD))


def test_pin_failures_lock_the_account_too(client, organisation, alice, clock):
    organisation.registration_mode = "pin"
    organisation.save()
    RegistrationPinFactory(user=alice, raw="11112222")
    assert fail(client, organisation, 6, secret="00000000")[-1] == auth.LOCKED_OUT
    assert fault_of(get_policies(client, organisation, "11112222"))[1] == auth.LOCKED_OUT
    # Wrong PINs of a client not signed in: one row per address, user and minute, with their count.
    failed = AuditEvent.objects.filter(action="registration_pin.failed")
    assert failed.aggregate(total=Sum("count"))["total"] == 5 and failed.count() <= 2
    clock.advance(31)
    parse(get_policies(client, organisation, "11112222"))


def test_failures_on_the_sign_in_page_and_in_windows_add_up(client, organisation, alice, clock):
    organisation.registration_mode = "pin_and_password"
    organisation.save()
    url = service_url(organisation, "signin")
    for _ in range(3):
        client.post(url, {"username": alice.email, "password": "wrong", "pin": "1", "appru": APPRU}, secure=True)
    fail(client, organisation, 2)  # a UsernameToken is refused before any secret is checked for this mode
    organisation.registration_mode = "password"
    organisation.save()
    assert fail(client, organisation, 3) == [auth.BAD_CREDENTIALS, auth.BAD_CREDENTIALS, auth.LOCKED_OUT]


def test_sign_in_page_says_the_account_is_locked_without_checking_the_password(client, organisation, alice, clock):
    organisation.auth_policy = "federated"
    organisation.save()
    url = service_url(organisation, "signin")
    for _ in range(6):
        client.post(url, {"username": alice.email, "password": "wrong", "appru": APPRU}, secure=True)
    response = client.post(url, {"username": alice.email, "password": PASSWORD, "appru": APPRU}, secure=True)
    assert auth.LOCKED_OUT in response.content.decode()
    assert b'name="wresult"' not in response.content
    assert lockouts() == [(1, 30)]


def test_portal_sign_in_lockout_lasts_thirty_seconds(client, organisation, alice, clock):
    login = reverse("invitations:login")
    for _ in range(6):
        client.post(login, {"identity": alice.email, "password": "wrong"})
    assert client.post(login, {"identity": alice.email, "password": PASSWORD}).status_code == 429
    clock.advance(31)
    assert client.post(login, {"identity": alice.email, "password": PASSWORD}).status_code == 302
    assert lockouts() == [(1, 30)]
    assert not AccountLockout.objects.exists()  # the successful sign-in reset the doubling
