"""Invitations, their emails and the re-issue after a regeneration of the enrollment URL."""
import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InvalidTransition(Exception):
    def __init__(self, current, wanted):
        super().__init__(f"cannot go from {current} to {wanted}")
        self.current, self.wanted = current, wanted


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


class UrlRotation(models.Model):
    """One "Regenerate enrollment URL": its progress re-issuing pending invitations."""

    version = models.PositiveIntegerField(_("version"))
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("started by"), null=True, blank=True,
                                   on_delete=models.SET_NULL)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    total = models.PositiveIntegerField(_("total"), null=True, blank=True)
    done = models.PositiveIntegerField(_("done"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # When a run last showed life (started, or committed a batch): the sweep resumes a rotation that
    # has shown none for INVITATION_SWEEP_AFTER_SECONDS (its task lost with the broker, or never
    # published). NULL on rotations from before it was kept: their start stands for it.
    progress_at = models.DateTimeField(_("progress at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("URL rotation")
        verbose_name_plural = _("URL rotations")
        ordering = ["-started_at"]

    def __str__(self):
        return _("Enrollment URL v%(version)s") % {"version": self.version}

    @property
    def progress_percent(self):
        if not self.total:
            return 100 if self.finished_at else 0
        return int(100 * self.done / self.total)

    @classmethod
    def with_email_counts(cls, rotations):
        """`rotations` (a list), each given `sent`, `failed` and `waiting`: its re-issue emails by
        status, in one query. A rotation's emails are the re-issues queued from its start until the next
        rotation's, which is how reissue_for_rotation tells them apart too. Returns the list."""
        rotations = list(rotations)
        if not rotations:
            return rotations
        first = min(rotation.started_at for rotation in rotations)
        later = list(cls.objects.filter(started_at__gt=first).values_list("started_at", flat=True))
        aggregates = {}
        for rotation in rotations:
            window = models.Q(queued_at__gte=rotation.started_at)
            following = min((start for start in later if start > rotation.started_at), default=None)
            if following is not None:
                window &= models.Q(queued_at__lt=following)
            for name, statuses in (("sent", ["sent"]), ("failed", ["failed"]), ("waiting", ["queued", "sending"])):
                aggregates[f"{rotation.pk}_{name}"] = models.Count("pk", filter=window & models.Q(status__in=statuses))
        counts = InvitationEmail.objects.filter(reason=InvitationEmail.Reason.REISSUE,
                                                queued_at__gte=first).aggregate(**aggregates)
        for rotation in rotations:
            rotation.sent, rotation.failed, rotation.waiting = (
                counts[f"{rotation.pk}_{name}"] for name in ("sent", "failed", "waiting"))
        return rotations

    @property
    def state(self):
        """Where the re-issue stands, from its emails (with_email_counts): "counting" the pending
        invitations, "queuing" their emails, "sending" them, or "finished" once every email is sent or
        has failed. Queuing ends quickly; the emails are what users wait for."""
        if self.total is None:
            return "counting"
        if self.finished_at is None and self.done < self.total:
            return "queuing"
        if self.waiting:
            return "sending"
        return "finished"

    @property
    def handled(self):
        """Emails that reached their end (sent or failed): what the progress bar shows."""
        return self.sent + self.failed


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        """Invitations a user can still follow: not revoked, not used, not expired."""
        return self.filter(revoked_at__isnull=True, accepted_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        OPENED = "opened", _("opened")
        ACCEPTED = "accepted", _("accepted")
        COMPLETED = "completed", _("enrollment completed")
        REVOKED = "revoked", _("revoked")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("user"), related_name="invitations",
                             on_delete=models.CASCADE)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
                                   related_name="+",
                                   on_delete=models.SET_NULL)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]

    def __str__(self):
        return _("Invitation for %(user)s") % {"user": self.user}

    @property
    def is_expired(self):
        return self.expires_at <= timezone.now()

    @property
    def display_status(self):
        if self.status in (self.Status.QUEUED, self.Status.SENT, self.Status.OPENED, self.Status.FAILED) \
                and self.is_expired:
            return "expired"
        return self.status


class InvitationEmail(models.Model):
    """One send request (first send, resend, re-issue after a URL regeneration).

    The row is the source of truth: the task sends it at most once, and the sweep re-queues rows
    that stayed queued (broker down). Its token is made when the email is sent and stored hashed.
    """

    class Reason(models.TextChoices):
        INVITE = "invite", _("invitation")
        RESEND = "resend", _("resend")
        REISSUE = "reissue", _("new enrollment URL")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    invitation = models.ForeignKey(Invitation, verbose_name=_("invitation"), related_name="emails",
                                   on_delete=models.CASCADE)
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices, default=Reason.INVITE)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    token_hash = models.CharField(_("token hash"), max_length=64, null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation email")
        verbose_name_plural = _("invitation emails")
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["status", "queued_at"])]
        # The token is set when the email is sent: a bulk invite inserts thousands of rows without one.
        # Only the rows that have one are in the unique index (NULLs are distinct in a unique index
        # anyway, PostgreSQL "Unique Indexes"), and the look-up is by equality, so no varchar_pattern_ops
        # twin (what unique=True adds on PostgreSQL, for LIKE).
        constraints = [models.UniqueConstraint(fields=["token_hash"], condition=models.Q(token_hash__isnull=False),
                                               name="invitationemail_token_hash_unique")]

    def __str__(self):
        return _("%(reason)s to %(user)s") % {"reason": self.get_reason_display(), "user": self.invitation.user}
