"""The email backend outside DEBUG when EMAIL_URL is not set: it sends nothing and says why.

Invitation emails carry a sign-in link and may carry a registration PIN: printed by Django's console
backend they would land in the journal, readable by more people than the invitees (OWASP Logging
Cheat Sheet). Each email fails instead, with the reason shown in the console, and the system check
mdmportal.E004 and `manage.py doctor` report the missing EMAIL_URL.
"""
from smtplib import SMTPException

from django.core.mail.backends.base import BaseEmailBackend

NOT_CONFIGURED = "EMAIL_URL is not set: set EMAIL_URL=smtp+tls://user:password@host:587"


class EmailNotConfigured(SMTPException):
    """An SMTPException, so that sending fails and is retried like an SMTP server that is down."""


class UnconfiguredEmailBackend(BaseEmailBackend):
    def open(self):
        if not self.fail_silently:
            raise EmailNotConfigured(NOT_CONFIGURED)

    def send_messages(self, email_messages):
        if email_messages and not self.fail_silently:
            raise EmailNotConfigured(NOT_CONFIGURED)
        return 0
