"""Invitations: creating them, sending their emails at most once, revoking and following them.

Called alike by the console, the API, the wizard, the CSV import and the Celery tasks.
"""
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import AuditEvent, Organisation, without_nul
from accounts.registration import IssuedPin, effective_registration_settings, pins, registration_settings_for
from mdmportal.lookups import AnyOf

from . import invite_sql
from .models import Invitation, InvitationEmail, InvalidTransition, UrlRotation, hash_token

logger = logging.getLogger(__name__)

# Chunk size of the fan-out task: one broker message per chunk keeps a 10,000-user action fast, and
# each chunk is sent over one SMTP connection.
FANOUT_CHUNK = 500


def invite(users, *, actor=None, ip=None):
    """Invite each user (a queryset or a list): a new invitation, or a resend of the one still pending.
    Returns the ids of the invitations emailed, one per user. See invite_ids()."""
    ids = list(users.values_list("pk", flat=True)) if isinstance(users, QuerySet) else [u.pk for u in users]
    return invite_ids(ids, actor=actor, ip=ip)


def invite_ids(ids, *, actor=None, ip=None):
    """invite() for the users with these ids.

    Set-based: a fixed handful of statements whatever the number of users (INSERT … SELECT, written out
    in invite_sql.py), only their ids loaded, so a console action on every user returns at once.

    The users are selected by their ids rather than by a subquery: right after an import or a first
    round of invitations the tables' statistics are stale (PostgreSQL estimates one pending invitation),
    and a subquery then got a nested-loop plan that rescanned the users for each invitation (28 s per
    statement for 10,000 resends), where a list of ids is a plain filter."""
    now = timezone.now()
    expires = now + timedelta(days=settings.INVITATION_TTL_DAYS)
    created_by = _user_or_none(actor)
    author = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        invite_sql.insert_missing_invitations(ids, created_by_id=created_by.pk if created_by else None, now=now,
                                              expires=expires)
        resent = invite_sql.audit_invitations_emailed(ids, actor_id=author.pk if author else None,
                                                      actor_label=without_nul(str(author)) if author else "system",
                                                      ip=ip, now=now)
        emails = invite_sql.insert_emails(ids, resent=resent, now=now)
        if any(reason == InvitationEmail.Reason.RESEND for _, _, reason in emails):
            Invitation.objects.pending().filter(AnyOf(F("user_id"), ids), expires_at__lt=expires).update(
                expires_at=expires)
        queue_emails(sorted(email_id for email_id, _, _ in emails))
    return [invitation_id for _, invitation_id, _ in emails]


def resend(invitation, *, actor=None, ip=None):
    # An enrolled user needs no invitation (they sign in at /go): a link would only be one more secret.
    if invitation.revoked_at or invitation.accepted_at or invitation.completed_at:
        raise InvalidTransition(invitation.status, "resend")
    with transaction.atomic():
        invitation.expires_at = timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)
        invitation.save(update_fields=["expires_at"])
        email = InvitationEmail.objects.create(invitation=invitation, reason=InvitationEmail.Reason.RESEND)
        AuditEvent.record(actor, "invitation.resent", invitation, ip=ip)
        queue_emails([email.pk])
    return email


def revoke(invitation, *, actor=None, ip=None):
    if invitation.status in (Invitation.Status.REVOKED, Invitation.Status.COMPLETED):
        raise InvalidTransition(invitation.status, Invitation.Status.REVOKED)
    invitation.status, invitation.revoked_at = Invitation.Status.REVOKED, timezone.now()
    invitation.save(update_fields=["status", "revoked_at"])
    AuditEvent.record(actor, "invitation.revoked", invitation, ip=ip)


def queue_emails(email_ids):
    """Queue the send tasks once the rows are committed. A broker outage loses nothing: the rows
    stay queued and the sweep re-queues them."""
    if not email_ids:
        return
    from . import tasks

    def enqueue():
        try:
            if len(email_ids) == 1:
                tasks.send_invitation_email.delay(email_ids[0])
                return
            for start in range(0, len(email_ids), FANOUT_CHUNK):
                tasks.fan_out_emails.delay(email_ids[start:start + FANOUT_CHUNK])
        except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
            logger.warning("broker unavailable, %d invitation email(s) stay queued for the sweep: %s",
                           len(email_ids), exc)

    transaction.on_commit(enqueue)


def claim(email):
    """Mark a queued email as sending with a fresh token, in one UPDATE that matches only while the row
    is queued and its invitation pending: of two workers given the same email (the sweep re-queued it),
    one gets it. Returns the token in clear, or None when there is nothing to send (already sent,
    sending elsewhere, invitation over). `email` comes with its invitation and user."""
    raw = secrets.token_urlsafe(32)
    sending = {"status": InvitationEmail.Status.SENDING, "token_hash": hash_token(raw)}
    pending = Exists(Invitation.objects.filter(pk=OuterRef("invitation_id"), revoked_at=None, accepted_at=None))
    queued = InvitationEmail.objects.filter(pk=email.pk, status=InvitationEmail.Status.QUEUED)
    if queued.filter(pending).update(**sending, attempts=F("attempts") + 1):
        email.status, email.token_hash, email.attempts = sending["status"], sending["token_hash"], email.attempts + 1
        return raw
    queued.exclude(pending).update(status=InvitationEmail.Status.FAILED, error="invitation no longer pending")
    return None


def deliver(email_id):
    """Send one queued invitation email (at most once). SMTP errors propagate to the caller."""
    email = InvitationEmail.objects.select_related("invitation__user").filter(pk=email_id).first()
    if email is None:
        return False
    with transaction.atomic():
        raw = claim(email)
        if raw is None:
            return False
        # The registration PIN is made here, as the email goes out, so it never travels through the
        # broker and each email shows a PIN nobody else has seen (a resend replaces the previous PIN).
        pin = _pin_for_email(email.invitation.user)
    try:
        build_message(email, raw, pin).send(fail_silently=False)
    except Exception:
        _give_back(email, pin)
        raise
    with transaction.atomic():
        _record_sent(email)
    return True


def deliver_many(email_ids):
    """Send a bulk invite's chunk of queued emails over one SMTP connection, each at most once and
    claimed (committed) before it is sent. The transaction that claims an email also records how the
    one before it went, so each email costs one commit and a worker killed at any point leaves at most
    one email "sending" (reported by the sweep). An email that cannot be sent goes back to the queue
    and its id is returned for the caller to retry it on its own (deliver()). Raises
    SMTPException/OSError, having claimed nothing, when the SMTP server cannot be reached."""
    emails = list(InvitationEmail.objects.filter(pk__in=email_ids, status=InvitationEmail.Status.QUEUED)
                  .select_related("invitation__user").order_by("pk"))
    if not emails:
        return []
    organisation = Organisation.get()
    policies = registration_settings_for([email.invitation.user for email in emails])
    connection = get_connection(fail_silently=False)
    connection.open()
    unsent, outcome = [], None
    try:
        for email in emails:
            with transaction.atomic():
                _record_outcome(outcome)
                outcome = None
                raw = claim(email)
                if raw is None:
                    continue
                policy = policies[email.invitation.user_id]
                pin = _pin_for_email(email.invitation.user, policy)
            outcome = _send(connection, email, raw, pin, organisation, policy)
            if outcome.error:
                unsent.append(email.pk)
        with transaction.atomic():
            _record_outcome(outcome)
    finally:
        _close(connection)
    return unsent


@dataclass
class _Outcome:
    email: InvitationEmail
    pin: IssuedPin | None
    error: Exception | None = None


def _send(connection, email, raw, pin, organisation, policy):
    """Send one claimed email of a chunk over the chunk's SMTP connection."""
    try:
        message = build_message(email, raw, pin, organisation=organisation, policy=policy)
        message.connection = connection
        message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any SMTP or socket error: this email is retried alone
        logger.warning("invitation email %s not sent in its batch, retried alone: %s", email.pk, exc)
        # The next email gets a fresh connection: this one may be broken (send_messages reopens it).
        _close(connection)
        return _Outcome(email, pin, exc)
    return _Outcome(email, pin)


def _close(connection):
    try:
        connection.close()
    except (SMTPException, OSError):  # a broken connection may fail to say goodbye; it is dropped anyway
        pass


def _record_outcome(outcome):
    if outcome is None:
        return
    if outcome.error is None:
        _record_sent(outcome.email)
    else:
        _give_back(outcome.email, outcome.pin)


def _give_back(email, pin):
    """Not sent: give the row back to the queue so the retry (or the sweep) can send it, and drop the
    PIN nobody saw."""
    InvitationEmail.objects.filter(pk=email.pk).update(status=InvitationEmail.Status.QUEUED)
    if pin is not None and pin.record.is_usable:
        pin.record.revoke()


def _record_sent(email):
    now = timezone.now()
    InvitationEmail.objects.filter(pk=email.pk).update(status=InvitationEmail.Status.SENT, sent_at=now, error="")
    invitation = Invitation.objects.filter(pk=email.invitation_id)
    # Sent moves a queued invitation on and clears a failure; opened, accepted... stay as they are.
    if not invitation.filter(status__in=[Invitation.Status.QUEUED, Invitation.Status.FAILED]).update(
            status=Invitation.Status.SENT, failure_reason="", sent_at=now):
        invitation.update(sent_at=now)
    AuditEvent.record(None, "invitation.email_delivered", email.invitation, detail={"email": email.pk})


def record_failure(email_id, exc, *, final):
    reason = f"{type(exc).__name__}: {exc}"[:1000]
    logger.warning("invitation email %s failed (%s): %s", email_id, "final" if final else "will retry", reason)
    InvitationEmail.objects.filter(pk=email_id).update(
        error=reason, **({"status": InvitationEmail.Status.FAILED} if final else {})
    )
    if final:
        email = InvitationEmail.objects.select_related("invitation").get(pk=email_id)
        Invitation.objects.filter(pk=email.invitation_id).exclude(
            status__in=[Invitation.Status.REVOKED, Invitation.Status.COMPLETED, Invitation.Status.ACCEPTED,
                        Invitation.Status.OPENED]
        ).update(status=Invitation.Status.FAILED, failure_reason=reason)
        AuditEvent.record(None, "invitation.email_failed", email.invitation, detail={"reason": reason})


def _pin_for_email(user, policy=None):
    """An IssuedPin when the user's registration settings (`policy`, when the caller
    has them) ask for a PIN, else None."""
    if not (policy or effective_registration_settings(user)).requires_pin:
        return None
    return pins().issue(user)


def build_message(email, raw_token, pin=None, *, organisation=None, policy=None):
    """The invitation email; `pin` is the IssuedPin when the user enrolls with one.
    A caller sending many passes the organisation and the user's registration settings it already has."""
    invitation = email.invitation
    user = invitation.user
    org = organisation or Organisation.get()
    policy = policy or effective_registration_settings(user)
    context = {
        "registration": policy,
        "pin": pin.code if pin else None,
        "pin_expires_at": pin.record.expires_at if pin else None,
        "user": user,
        "organisation": org,
        "invitation": invitation,
        "invitation_url": settings.PORTAL_URL + reverse("invitations:accept", args=[raw_token]),
        "go_url": settings.PORTAL_URL + reverse("invitations:go"),
        "enrollment_url": org.enrollment_url,
        "reissue": email.reason == InvitationEmail.Reason.REISSUE,
    }
    message = render_email("invitation", context, user)
    message.extra_headers["X-Mdmportal-Invitation"] = str(invitation.pk)
    return message


def render_email(name, context, user):
    """The email emails/<name>_subject.txt, <name>.txt and <name>.html make for `user`, in the user's
    language: a text body with an HTML alternative."""
    with translation.override(user.language):
        subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
        text = render_to_string(f"emails/{name}.txt", context)
        html = render_to_string(f"emails/{name}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [user.email])
    message.attach_alternative(html, "text/html")
    return message


def sweep():
    """Re-queue emails still queued after INVITATION_SWEEP_AFTER_SECONDS (the broker was down when
    they were requested); report emails stuck in "sending" (a worker died mid-send) as failed rather
    than risk sending them twice. Returns (requeued, abandoned)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.INVITATION_SWEEP_AFTER_SECONDS)
    stuck = InvitationEmail.objects.filter(status=InvitationEmail.Status.SENDING, queued_at__lt=now - timedelta(hours=1))
    abandoned = stuck.update(status=InvitationEmail.Status.FAILED,
                             error="interrupted while sending; use Resend if it did not arrive")
    ids = list(InvitationEmail.objects.filter(status=InvitationEmail.Status.QUEUED, queued_at__lt=cutoff)
               .values_list("pk", flat=True)[:10000])
    if ids:
        logger.info("sweep re-queues %d invitation email(s)", len(ids))
        with transaction.atomic():
            queue_emails(ids)
    resume_stalled_rotations(now)
    return len(ids), abandoned


def regenerate_enrollment_url(organisation, *, actor=None, ip=None):
    """Rotate the organisation's enrollment key (old URLs stop working) and re-issue every pending
    invitation with the new URL, in Celery once the rotation is committed. Returns the UrlRotation
    that follows the re-issue."""
    with transaction.atomic():
        org = organisation.rotate_enrollment_key()
        rotation = UrlRotation.objects.create(version=org.enrollment_url_version, started_by=actor)
        AuditEvent.record(actor, "enrollment_url.regenerated", org, ip=ip,
                          detail={"version": org.enrollment_url_version})
        transaction.on_commit(lambda: _start_reissue(rotation.pk))
    organisation.refresh_from_db()
    return rotation


def _start_reissue(rotation_id):
    """Queue the re-issue of a rotation. A broker outage loses nothing: the rotation stays unfinished
    and the sweep resumes it."""
    from . import tasks

    try:
        tasks.reissue_invitations.delay(rotation_id)
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is down
        logger.warning("broker unavailable, the re-issue of enrollment URL rotation %s waits for the sweep: %s",
                       rotation_id, exc)


def reissue_for_rotation(rotation):
    """After a regeneration, send the current enrollment URL to every user with a pending invitation.

    Resumable: each batch commits its emails together with the progress, and a run redelivered after
    its worker died, or resumed by the sweep, skips the invitations this rotation already re-issued.
    Two runs of one rotation (a redelivery and a resumption) take turns batch by batch on the
    rotation's row lock, each choosing its batch once it holds the lock, so none gets it twice."""
    if rotation.finished_at:
        return
    pending = Invitation.objects.pending().order_by("pk")
    reissued = Exists(InvitationEmail.objects.filter(
        invitation=OuterRef("pk"), reason=InvitationEmail.Reason.REISSUE, queued_at__gte=rotation.started_at))
    rotations = UrlRotation.objects.filter(pk=rotation.pk)
    rotations.update(total=pending.count(), progress_at=timezone.now())
    todo = pending.exclude(reissued)
    last_pk = 0
    while True:
        with transaction.atomic():
            rotations.select_for_update().values_list("pk", flat=True).get()  # this run's turn
            batch = list(todo.filter(pk__gt=last_pk).values_list("pk", flat=True)[:FANOUT_CHUNK])
            if not batch:
                break
            emails = InvitationEmail.objects.bulk_create(
                [InvitationEmail(invitation_id=pk, reason=InvitationEmail.Reason.REISSUE) for pk in batch]
            )
            # Counted, not added up: another run, or one killed while committing, may have committed a batch.
            rotations.update(done=pending.filter(reissued).count(), progress_at=timezone.now())
            queue_emails([e.pk for e in emails])
        last_pk = batch[-1]
    rotations.filter(finished_at=None).update(finished_at=timezone.now())
    rotation.refresh_from_db()


def resume_stalled_rotations(now=None):
    """Queue again the re-issue of every unfinished rotation that has shown no progress for
    INVITATION_SWEEP_AFTER_SECONDS: its task was lost (the broker was down when it was requested, or
    lost its messages) and nothing else would finish it. Runs that meet take turns (reissue_for_rotation).
    Returns the ids of the rotations resumed."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.INVITATION_SWEEP_AFTER_SECONDS)
    stalled = list(UrlRotation.objects.filter(finished_at=None).annotate(
        last_seen=Coalesce("progress_at", "started_at")).filter(last_seen__lt=cutoff).values_list("pk", flat=True))
    # Marked first, so the next sweep waits for these resumptions to show progress before another.
    UrlRotation.objects.filter(pk__in=stalled).update(progress_at=now)
    for rotation_id in stalled:
        logger.warning("enrollment URL rotation %s showed no progress: its re-issue is queued again", rotation_id)
        _start_reissue(rotation_id)
    return stalled


def find_by_token(raw_token):
    """The invitation a link's token belongs to, or None."""
    email = find_email_by_token(raw_token)
    return email.invitation if email else None


def find_email_by_token(raw_token):
    """The invitation email a link's token was sent in (with its invitation and user), or None."""
    if not raw_token or len(raw_token) > 200:
        return None
    return InvitationEmail.objects.select_related("invitation__user").filter(
        token_hash=hash_token(raw_token)).first()


def is_superseded(email):
    """Whether the user was sent a newer link than the one of `email` (a resend, a re-issue after a new
    enrollment URL, a new invitation): only the newest link a user received opens the portal, so a
    forwarded or leaked older email cannot be used once a newer one went out. A newer email that was
    never delivered (queued, failed) replaces nothing: the user does not have it."""
    return InvitationEmail.objects.filter(invitation__user_id=email.invitation.user_id, pk__gt=email.pk,
                                          status=InvitationEmail.Status.SENT).exists()


def mark_opened(invitation, ip=None):
    if invitation.opened_at:
        return
    invitation.opened_at = timezone.now()
    fields = ["opened_at"]
    if invitation.status in (Invitation.Status.QUEUED, Invitation.Status.SENT, Invitation.Status.FAILED):
        invitation.status = Invitation.Status.OPENED
        fields.append("status")
    invitation.save(update_fields=fields)
    AuditEvent.record(None, "invitation.opened", invitation, ip=ip)


def accept(invitation, ip=None):
    """The user followed the link and signed in or set a password: the token is spent."""
    if invitation.revoked_at or invitation.accepted_at or invitation.is_expired:
        raise InvalidTransition(invitation.display_status, Invitation.Status.ACCEPTED)
    invitation.accepted_at = timezone.now()
    invitation.status = Invitation.Status.ACCEPTED
    invitation.save(update_fields=["accepted_at", "status"])
    AuditEvent.record(invitation.user, "invitation.accepted", invitation, ip=ip)


def mark_enrollment_completed(user):
    """Called when the user's first device enrolls."""
    now = timezone.now()
    invitations = Invitation.objects.filter(user=user, completed_at__isnull=True, revoked_at__isnull=True)
    for invitation in invitations:
        invitation.completed_at, invitation.status = now, Invitation.Status.COMPLETED
        invitation.save(update_fields=["completed_at", "status"])
        AuditEvent.record(None, "invitation.completed", invitation)


def _user_or_none(actor):
    return actor if getattr(actor, "is_authenticated", False) else None
