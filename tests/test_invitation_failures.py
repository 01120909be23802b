"""What an administrator sees when the SMTP server is missing: a failed status with the reason."""
import pytest

from accounts.models import AuditEvent
from invitations import sending
from invitations.models import Invitation, InvitationEmail
from tests.factories import UserFactory
from tests.services import free_port


@pytest.fixture
def dead_smtp(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


def test_missing_smtp_server_marks_invitation_failed_with_reason(db, dead_smtp, organisation,
                                                                 django_capture_on_commit_callbacks):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([user])

    invitation = Invitation.objects.get(user=user)
    assert invitation.status == Invitation.Status.FAILED
    assert "Connection" in invitation.failure_reason
    assert invitation.emails.get().status == InvitationEmail.Status.FAILED
    assert AuditEvent.objects.filter(action="invitation.email_failed").exists()


def test_email_is_sent_at_most_once_per_send_request(db, organisation, mailoutbox,
                                                     django_capture_on_commit_callbacks):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        sending.invite([user])
    email = InvitationEmail.objects.get()

    assert sending.deliver(email.pk) is False
    assert len(mailoutbox) == 1
