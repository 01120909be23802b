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

    version = models.PositiveIntegerField()
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(auto_now_add=True)
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Enrollment URL v{self.version}"

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

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="invitations", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invitation for {self.user}"

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

    invitation = models.ForeignKey(Invitation, related_name="emails", on_delete=models.CASCADE)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.INVITE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self):
        return f"{self.get_reason_display()} to {self.invitation.user}"
