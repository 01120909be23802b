"""The bottom floor: users, the organisation (its enrollment key and registration settings), user
groups, sign-in lockouts and the audit log."""
import hashlib
import secrets
from contextlib import contextmanager

from asgiref.local import Local

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from mdmportal.rows import Columns, statement



class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)

    def create_user(self, email, password=None, **fields):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    def for_login(self, identity):
        """The user whose email or MDM username is `identity` (case-insensitive), or None."""
        identity = identity.strip()
        if not identity or "\x00" in identity:
            # No account is named that, and PostgreSQL refuses NUL in a query (a 500 otherwise).
            return None
        # filter(Q(email__iexact=…) | Q(mdm_username__iexact=…)).first(), written out once (mdmportal/rows.py):
        # every sign-in and every device's Discover looks the account up, and compiling the ORM's query
        # cost more than the rest of a Discover. UPPER() on both sides, as the expression indexes have it.
        where, order = _login_lookup(connection)
        found = _USER.where(connection, where, [identity, identity], order_by=order, limit=1)
        return found[0] if found else None


class User(AbstractBaseUser, PermissionsMixin):
    class Language(models.TextChoices):
        ENGLISH = "en", _("English")
        FRENCH = "fr", _("Français")

    email = models.EmailField(_("email"), unique=True)
    mdm_username = models.CharField(
        _("MDM username"), max_length=150, unique=True, null=True, blank=True,
        help_text=_("Only when the user signs in to MDM with a name other than the email."),
    )
    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.ENGLISH)
    device_limit = models.PositiveSmallIntegerField(_("device limit"), default=5)
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("console access"), default=False)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]
        permissions = [("send_invitation", "Can send invitations")]
        # Sign-ins look users up case-insensitively (for_login: UPPER(email) = UPPER(%s)), several
        # times per request; the unique indexes on the plain columns cannot serve that.
        indexes = [
            models.Index(Upper("email"), name="user_email_upper_idx"),
            models.Index(Upper("mdm_username"), name="user_mdm_username_upper_idx"),
        ]

    def __str__(self):
        return self.email

    def save(self, *args, **kwargs):
        self.email = self.email.strip().lower()
        self.mdm_username = (self.mdm_username or "").strip() or None
        super().save(*args, **kwargs)

    def get_full_name(self):
        return self.display_name or self.email

    def get_short_name(self):
        return self.display_name or self.email

    @property
    def enrollment_username(self):
        """What the user types in Windows: the MDM username when set, else the email."""
        return self.mdm_username or self.email


class AuthPolicy(models.TextChoices):
    """How Windows signs the user in (MS-MDE2 AuthPolicy): the secret typed in Windows itself, or our web page."""

    ONPREMISE = "onpremise", _("On-premise: the user types the secret in Windows")
    FEDERATED = "federated", _("Federated: Windows opens our sign-in page")


class RegistrationMode(models.TextChoices):
    """What a user proves to enroll a device (Ivanti's registration authentication settings)."""

    PASSWORD = "password", _("Password")
    PIN = "pin", _("Registration PIN only")
    PIN_AND_PASSWORD = "pin_and_password", _("PIN and password")


def default_auth_policy():
    """A new organisation starts with the server's ENROLLMENT_AUTH_POLICY; the console changes it."""
    return settings.ENROLLMENT_AUTH_POLICY


class RegistrationSettings(models.Model):
    """Registration authentication settings: the organisation's defaults, and a user group's."""

    registration_mode = models.CharField(_("registration authentication"), max_length=16,
                                         choices=RegistrationMode.choices, default=RegistrationMode.PASSWORD)
    pin_length = models.PositiveSmallIntegerField(
        _("PIN length"), default=8, validators=[MinValueValidator(6), MaxValueValidator(12)],
        help_text=_("Digits in a registration PIN, 6 to 12."),
    )
    pin_lifetime_hours = models.PositiveIntegerField(
        _("PIN lifetime (hours)"), default=7 * 24, validators=[MinValueValidator(1), MaxValueValidator(90 * 24)],
        help_text=_("How long a registration PIN can be used after it is issued."),
    )
    pin_renewal_allowed = models.BooleanField(
        _("users may request a new PIN"), default=True,
        help_text=_("Shows a “Request a new PIN” button on the user's enrollment page."),
    )

    REGISTRATION_FIELDS = ["registration_mode", "pin_length", "pin_lifetime_hours", "pin_renewal_allowed"]

    class Meta:
        abstract = True


# Organisation.read_once(): the row read in the current block, per thread.
_organisation_read = Local()
_audit_batch = Local()


class Organisation(RegistrationSettings):
    """The one organisation this portal serves (a singleton row, pk=1). Its registration settings are
    the default for users in no user group."""

    name = models.CharField(_("organisation name"), max_length=200, default="My organisation")
    enrollment_base_url = models.URLField(
        _("enrollment server address"), blank=True,
        help_text=_("https://host the devices reach, e.g. https://enterpriseenrollment.example.com"),
    )
    enrollment_key = models.CharField(_("enrollment key"), max_length=64, editable=False)
    enrollment_url_version = models.PositiveIntegerField(_("enrollment url version"), default=1, editable=False)
    setup_completed_at = models.DateTimeField(_("setup completed at"), null=True, blank=True, editable=False)
    auth_policy = models.CharField(_("sign-in method"), max_length=16, choices=AuthPolicy.choices,
                                   default=default_auth_policy)

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        permissions = [("regenerate_enrollment_url", "Can regenerate the enrollment URL")]

    def __str__(self):
        return self.name

    @classmethod
    def get(cls):
        read = getattr(_organisation_read, "rows", None)
        if read:
            return read[0]
        # Every device request reads this row: its SELECT is written out once (mdmportal/rows.py).
        org = _ORGANISATION.first(connection, pk=1)
        if org is None:
            org, _created = cls.objects.get_or_create(
                pk=1, defaults={"enrollment_key": secrets.token_urlsafe(12)}
            )
        if read is not None:
            read.append(org)
        return org

    @classmethod
    @contextmanager
    def read_once(cls):
        """Within this block (one request of the enrollment services, which read the organisation's
        key, address and sign-in method several times and never change them) get() reads the row once
        and hands the same object back. Saving an Organisation forgets it. Per thread (asgiref Local)."""
        if getattr(_organisation_read, "rows", None) is not None:
            yield  # nested: the outer block's read stands
            return
        _organisation_read.rows = []
        try:
            yield
        finally:
            _organisation_read.rows = None

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        read = getattr(_organisation_read, "rows", None)
        if read:
            read.clear()

    @property
    def base_url(self):
        return (self.enrollment_base_url or settings.ENROLLMENT_URL).rstrip("/")

    @property
    def enrollment_url(self):
        """The versioned server address a user pastes into Windows."""
        return f"{self.base_url}/EnrollmentServer/{self.enrollment_key}/Discovery.svc"

    def key_state(self, key):
        """'current', 'retired' (from before a regeneration) or 'unknown'."""
        if secrets.compare_digest(key, self.enrollment_key):
            return "current"
        if RetiredEnrollmentKey.objects.filter(key=key).exists():
            return "retired"
        return "unknown"

    def rotate_enrollment_key(self):
        """A new enrollment key (and URL version); the old key is kept as retired, so that devices
        still using it are told the address changed. Call it inside a transaction: the row is locked
        until it ends. Returns the organisation as saved."""
        org = Organisation.objects.select_for_update().get(pk=self.pk)
        RetiredEnrollmentKey.objects.create(key=org.enrollment_key, version=org.enrollment_url_version)
        org.enrollment_key = secrets.token_urlsafe(12)
        org.enrollment_url_version += 1
        org.save(update_fields=["enrollment_key", "enrollment_url_version"])
        return org


_ORGANISATION = Columns(Organisation, "o")
_USER = Columns(User, "u")


@statement
def _login_lookup(connection):
    """(WHERE, ORDER BY) of UserManager.for_login."""
    email, username = _USER.column(connection, "email"), _USER.column(connection, "mdm_username")
    return f"UPPER({email}) = UPPER(%s) OR UPPER({username}) = UPPER(%s)", _USER.order(connection, ["pk"])


class UserGroup(RegistrationSettings):
    """Users who enroll with other registration settings than the organisation's default. A user in
    several groups gets the settings of the group with the lowest priority number."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("When a user is in several groups, the lowest number wins."),
    )
    members = models.ManyToManyField(User, related_name="user_groups", blank=True, verbose_name=_("members"))

    class Meta:
        ordering = ["priority", "name"]
        verbose_name = _("user group")
        verbose_name_plural = _("user groups")

    def __str__(self):
        return self.name


class AccountLockout(models.Model):
    """How many times in a row an account was locked out, so that each lockout lasts longer than the
    last (accounts/lockout.py). The failed attempts themselves are django-axes' AccessAttempt rows."""

    account = models.CharField(_("account"), max_length=255, unique=True,
                               help_text=_("The email (or the name typed, if unknown)"))
    lockouts = models.PositiveIntegerField(_("lockouts"), default=0)
    locked_at = models.DateTimeField(_("locked at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)

    class Meta:
        verbose_name = _("account lockout")
        verbose_name_plural = _("account lockouts")

    def __str__(self):
        return ngettext("%(account)s: %(count)d lockout", "%(account)s: %(count)d lockouts", self.lockouts) % {
            "account": self.account, "count": self.lockouts}


class RetiredEnrollmentKey(models.Model):
    key = models.CharField(_("key"), max_length=64, unique=True)
    version = models.PositiveIntegerField(_("version"))
    retired_at = models.DateTimeField(_("retired at"), auto_now_add=True)

    class Meta:
        verbose_name = _("retired enrollment key")
        verbose_name_plural = _("retired enrollment keys")



def without_nul(value):
    """`value` with NUL taken out of every string in it (dict keys and values, list items): PostgreSQL
    stores no NUL in text or JSON ("unsupported Unicode escape sequence"), and an audit row must not
    be lost to a NUL in what a client sent."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(item) for item in value]
    return value


class AuditEvent(models.Model):
    """Who did what, when, from where. Written by domain code; read-only in the console.

    Refusals of clients that have not authenticated (record_refusal) cost an attacker nothing, so they
    are coalesced: one row per address, action, target and reason a minute, with a `count`; and one
    address writes at most AUDIT_REFUSALS_PER_ADDRESS such rows a minute, the rest counted on one
    overflow row (OWASP Logging Cheat Sheet: protect the logging from flooding)."""

    REFUSALS_OVERFLOW = "audit.refusals_overflow"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("actor"), null=True, blank=True,
                              related_name="+", db_index=False,
                              on_delete=models.SET_NULL)
    actor_label = models.CharField(_("actor label"), max_length=254, blank=True)
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target label"), max_length=254, blank=True)
    ip = models.GenericIPAddressField(_("ip"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    count = models.PositiveIntegerField(_("count"),
        default=1, help_text=_("How many times it happened: refusals are counted per address, reason and minute"))
    last_at = models.DateTimeField(_("last at"), null=True, blank=True,
                                   help_text=_("The last of the refusals counted here"))
    # "<minute> <address> <digest of action, target and reason>" of a coalesced refusal, else NULL; the
    # prefix "<minute> <address> " finds an address's rows of the minute on the unique index.
    bucket = models.CharField(_("bucket"), max_length=100, null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-pk"]
        # Every event is one entry in each of these indexes, and a console action writes one event per
        # user (10,000 at once), so each index is one the code asks for:
        # - `action` is looked up by equality only (the log's filter, the dashboard, troubleshooting):
        #   a plain index, without the varchar_pattern_ops twin that db_index=True adds on PostgreSQL
        #   for LIKE, which no query of the code makes on it.
        # - `actor` is NULL on what the system does (deliveries, refusals, ...): the index that finds an
        #   administrator's events (and the rows to set to NULL when one is deleted) holds the others.
        # - `bucket` is set on coalesced refusals only (NULL on every other event): the unique index
        #   covers the rows that have one, and its varchar_pattern_ops also serves record_refusal's
        #   prefix count (bucket LIKE 'prefix%'), as well as equality. A unique index leaves NULLs
        #   distinct anyway (PostgreSQL, "Unique Indexes"), so leaving them out changes no uniqueness.
        indexes = [models.Index(fields=["action"], name="auditevent_action_idx"),
                   models.Index(fields=["actor"], condition=models.Q(actor__isnull=False), name="auditevent_actor_idx")]
        constraints = [models.UniqueConstraint(fields=["bucket"], condition=models.Q(bucket__isnull=False),
                                               opclasses=["varchar_pattern_ops"], name="auditevent_bucket_unique")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label or 'system'} {self.action}"

    @classmethod
    def record(cls, actor, action, target=None, *, ip=None, detail=None):
        """Write one event (inside a batched() block: add it to the block's INSERT, and return it unsaved)."""
        actor = actor if getattr(actor, "is_authenticated", False) else None
        event = cls(
            actor=actor,
            actor_label=without_nul(str(actor)) if actor else "system",
            action=without_nul(action),
            **cls._target_fields(target),
            ip=ip,
            detail=without_nul(detail or {}),
        )
        batch = getattr(_audit_batch, "events", None)
        if batch is not None:
            batch.append(event)
        else:
            event.save(force_insert=True)
        return event

    @classmethod
    @contextmanager
    def batched(cls):
        """Within this block record() collects its events, and they are written by one INSERT when the
        block ends without an exception (an enrollment records up to four: one statement instead of
        four). Use it inside the transaction the events belong to, so that they commit or roll back
        with it. Nested blocks write with the outermost. Per thread (asgiref Local)."""
        if getattr(_audit_batch, "events", None) is not None:
            yield
            return
        _audit_batch.events = events = []
        try:
            yield
        finally:
            _audit_batch.events = None
        if events:
            _AUDIT_EVENT.insert(connection, events)

    @staticmethod
    def _target_fields(target):
        if target is None:
            return {"target_type": "", "target_id": "", "target_label": ""}
        return {"target_type": target._meta.label, "target_id": without_nul(str(target.pk)),
                "target_label": without_nul(str(target))[:254]}

    @classmethod
    def record_refusal(cls, action, target=None, *, ip=None, reason="", detail=None):
        """Audit a refusal of a client that has not authenticated. The first refusal of its kind in a
        minute from an address writes a row (with `detail`); the next ones only add to its count, by one
        UPDATE. Past the address's cap of rows for the minute they add to its overflow row instead.
        Two requests racing for a new row make one (the unique bucket); racing past the cap can write
        as many extra rows as there are requests at that same instant."""
        now = timezone.now()
        prefix = f"{now:%Y%m%d%H%M} {ip or '-'} "
        target_key = f"{target._meta.label}:{target.pk}" if target is not None else ""
        digest = hashlib.sha256(f"{action}\n{target_key}\n{reason}".encode()).hexdigest()[:32]
        bucket = prefix + digest
        if cls._count_refusal(bucket, now):
            return
        if cls.objects.filter(bucket__startswith=prefix).count() >= settings.AUDIT_REFUSALS_PER_ADDRESS:
            detail = {"reason": "more refusals from this address this minute than are written one by one",
                      "first_action": action, "first_reason": reason[:200]}
            bucket, action, target = prefix + "overflow", cls.REFUSALS_OVERFLOW, None
            if cls._count_refusal(bucket, now):
                return
        event = cls(actor_label="system", action=without_nul(action), ip=ip, detail=without_nul(detail or {}),
                    bucket=bucket, last_at=now, **cls._target_fields(target))
        try:
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:
            cls._count_refusal(bucket, now)  # another request wrote it first

    @classmethod
    def _count_refusal(cls, bucket, now):
        return cls.objects.filter(bucket=bucket).update(count=F("count") + 1, last_at=now)


_AUDIT_EVENT = Columns(AuditEvent, "a")
