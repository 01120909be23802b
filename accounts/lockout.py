"""Sign-in lockout on top of django-axes: which account a failure counts against, and lockouts that
grow (Ivanti locks for 30 s after six failures; we double each further lockout, up to a cap).

django-axes counts the failures (AccessAttempt rows) and refuses a locked account; what we add:
- `account_for_lockout` (AXES_USERNAME_CALLABLE): every form and endpoint counts against the account's
  email, whichever name was typed;
- `cool_off` (AXES_COOLOFF_TIME): the account's current interval, from its AccountLockout row;
- `GrowingLockoutHandler` (AXES_HANDLER): tells `cool_off` which account a request is about, expires
  attempts per account, and takes the token out of an invitation link's path before axes stores it
  (AccessAttempt, AccessLog) or logs it;
- `record_lockout` (axes' user_locked_out signal): a new lockout raises the account's level and is
  audited.
"""
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.core.cache import cache
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models import Sum
from django.dispatch import receiver
from django.utils import timezone

from mdmportal.log_redaction import redact

from .models import AccountLockout, AuditEvent, User

LOCKED_OUT_ACTION = "account.locked_out"
MAX_ACCOUNT = 254


def account_for_lockout(request, credentials):
    """The portal forms pass `email=`, the console's login form and the enrollment service
    `username=`; either may hold the email or the separate MDM username. Resolving to the account's
    email makes the lockout per account."""
    credentials = credentials or {}
    typed = credentials.get("email") or credentials.get("username")
    if not typed and request is not None and request.method == "POST":
        typed = request.POST.get("email") or request.POST.get("username")
    typed = (typed or "").strip()
    user = User.objects.for_login(typed) if typed else None
    # Bounded for axes' AccessAttempt.username and AccountLockout.account (255): callers refuse longer
    # names first; this only keeps a missed one from becoming a database error.
    return user.email if user else typed.lower()[:MAX_ACCOUNT]


def interval(level):
    """How long the `level`-th lockout in a row lasts: the base, doubled each time, capped."""
    seconds = settings.SIGNIN_LOCKOUT_SECONDS * 2 ** (max(level, 1) - 1)
    return timedelta(seconds=min(seconds, settings.SIGNIN_LOCKOUT_MAX_SECONDS))


def current_level(account, now):
    """Lockouts in a row so far; the count starts again after SIGNIN_LOCKOUT_RESET_HOURS without one."""
    record = AccountLockout.objects.filter(account=account).first() if account else None
    if record is None or record.locked_until is None:
        return 0
    if now - record.locked_until > timedelta(hours=settings.SIGNIN_LOCKOUT_RESET_HOURS):
        return 0
    return record.lockouts


def cool_off(request=None):
    """AXES_COOLOFF_TIME: both how long failures are remembered and how long a lockout lasts (that is
    axes' model), for the account this request is about."""
    account = getattr(request, "lockout_account", None)
    now = getattr(request, "axes_attempt_time", None) or timezone.now()
    return interval(current_level(account, now))


def _redact_path(request):
    """axes keeps the request's path (request.axes_path_info, set before its handler runs) in its tables
    and its log lines; through /invite/<token> that path is a sign-in link (OWASP Logging Cheat Sheet:
    never record access tokens)."""
    if request is not None and hasattr(request, "axes_path_info"):
        request.axes_path_info = redact(request.axes_path_info)


class GrowingLockoutHandler(AxesDatabaseHandler):
    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        _redact_path(request)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        _redact_path(request)
        return super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        _redact_path(request)
        return super().user_logged_out(sender, request, user, **kwargs)

    def get_user_attempts(self, request, credentials=None):
        request.lockout_account = get_client_username(request, credentials)
        return super().get_user_attempts(request, credentials)

    def clean_expired_user_attempts(self, request=None, credentials=None):
        # axes deletes every attempt older than *this request's* cool-off; with intervals per account
        # that would end another account's longer lockout early. So: everybody's attempts expire at
        # the cap, this account's own at its interval.
        now = getattr(request, "axes_attempt_time", None) or timezone.now()
        count, _ = AccessAttempt.objects.filter(
            attempt_time__lt=now - timedelta(seconds=settings.SIGNIN_LOCKOUT_MAX_SECONDS)).delete()
        if request is None or not credentials:
            return count
        account = request.lockout_account = get_client_username(request, credentials)
        own, _ = AccessAttempt.objects.filter(username=account, attempt_time__lt=now - cool_off(request)).delete()
        return count + own


def is_locked(request, account):
    """Whether axes refuses this account (or this address) right now, without counting a failure."""
    return not AxesProxyHandler.is_allowed(request, {"username": account})


def reset_after_success(request, account):
    """A complete, successful sign-in (every secret the account needs): its failures and the lockout
    escalation start again. Never after a partial success, or a known password would let the PIN be
    guessed forever."""
    end_lockout(account)


def end_lockout(account):
    """Forget the account's failures and lockout escalation (its addresses' failures stay counted)."""
    AxesProxyHandler.reset_attempts(username=account)
    AccountLockout.objects.filter(account=account).delete()


@receiver(user_locked_out)
def record_lockout(sender, request, username, ip_address, **kwargs):
    """Raise the account's level when it has just been locked out (axes also signals refused attempts
    during a lockout: those change nothing), and audit it."""
    if not username:
        return
    now = getattr(request, "axes_attempt_time", None) or timezone.now()
    if AccountLockout.objects.filter(account=username, locked_until__gt=now).exists():
        return
    level = current_level(username, now)
    own_failures = AccessAttempt.objects.filter(username=username, attempt_time__gte=now - interval(level)).aggregate(
        total=Sum("failures_since_start"))["total"] or 0
    if own_failures < settings.AXES_FAILURE_LIMIT:
        # The address reached the limit (failures spread over several accounts), not this account.
        # Audited when it happens, not again at each refused attempt (those record no failure).
        if getattr(request, "axes_failures_since_start", None) is not None:
            AuditEvent.record(None, "address.locked_out", ip=ip_address, detail={"last_account": username})
        return
    with transaction.atomic():
        record, _created = AccountLockout.objects.select_for_update().get_or_create(account=username)
        if record.locked_until is not None and record.locked_until > now:
            return  # a concurrent failure recorded this lockout first
        level = current_level(username, now) + 1
        duration = interval(level)
        record.lockouts, record.locked_at, record.locked_until = level, now, now + duration
        record.save(update_fields=["lockouts", "locked_at", "locked_until"])
        user = User.objects.filter(email=username).first()
        AuditEvent.record(None, LOCKED_OUT_ACTION, user, ip=ip_address, detail={
            "account": username, "lockout": level, "seconds": int(duration.total_seconds()),
            "path": getattr(request, "axes_path_info", ""),
        })


@receiver(user_logged_in)
def forget_lockouts(sender, request, user, **kwargs):
    """A portal or console sign-in succeeded (axes already forgot the failures: AXES_RESET_ON_SUCCESS)."""
    AccountLockout.objects.filter(account=user.email).delete()


def count_in_window(key, window_seconds):
    """Count one event under `key` (in the shared cache) and return how many there were in the
    `window_seconds` that started with the first of them (a fixed window)."""
    cache.add(key, 0, window_seconds)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window_seconds)
        return 1


def over_rate(key, limit, window_seconds):
    """Count one request under `key` and say whether it goes over `limit` requests in the window
    (count_in_window). For requests that are not sign-ins (django-axes counts those)."""
    return count_in_window(key, window_seconds) > limit
