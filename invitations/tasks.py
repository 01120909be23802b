import logging
from smtplib import SMTPException

from celery import shared_task

from . import sending
from .models import UrlRotation

MAX_RETRIES = 5

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def send_invitation_email(self, email_id):
    try:
        sending.deliver(email_id)
    except (SMTPException, OSError) as exc:
        # In-process (no broker) there is no one to retry later: report the failure now.
        final = self.request.is_eager or self.request.retries >= self.max_retries
        sending.record_failure(email_id, exc, final=final)
        if not final:
            raise self.retry(exc=exc, countdown=min(600, 10 * 2 ** self.request.retries))


@shared_task
def fan_out_emails(email_ids):
    """A bulk invite's chunk: sent over one SMTP connection; what fails goes to the one-email task,
    which retries it with backoff and records a final failure."""
    try:
        unsent = sending.deliver_many(email_ids)
    except (SMTPException, OSError) as exc:
        logger.warning("SMTP unavailable for a batch of %d invitation emails, each retried alone: %s",
                               len(email_ids), exc)
        unsent = email_ids
    for email_id in unsent:
        send_invitation_email.delay(email_id)


@shared_task
def sweep_queued_emails():
    sending.sweep()


@shared_task
def reissue_invitations(rotation_id):
    sending.reissue_for_rotation(UrlRotation.objects.get(pk=rotation_id))


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def send_password_reset(self, email, ip=None, by_administrator=False):
    """Look the account up and send its password reset email (invitations/password_reset.py)."""
    from . import password_reset

    try:
        password_reset.deliver(email, ip, by_administrator)
    except (SMTPException, OSError) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            logger.warning("password reset email not sent: %s", exc)
            return
        raise self.retry(exc=exc, countdown=min(600, 10 * 2 ** self.request.retries))
