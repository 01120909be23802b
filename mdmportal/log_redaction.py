"""A logging filter that takes the token out of invitation links before a record is written.

Django logs the path of refused requests (django.request "Forbidden: /invite/<token>", the CSRF
refusal) and the development server logs every request line; an invitation's token in the journal
is a sign-in link for whoever reads it (OWASP Logging Cheat Sheet: never log access tokens).
Attached to those loggers in settings.LOGGING, so that every handler, not only ours, sees the
redacted record.
"""
import logging
import re

INVITATION_PATH = re.compile(r"(/invite/)[^/\s?#\"'<>]+")
REDACTED = r"\1[redacted]"


def redact(value):
    return INVITATION_PATH.sub(REDACTED, value) if isinstance(value, str) else value


class RedactInvitationTokens(logging.Filter):
    def filter(self, record):
        record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: redact(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(redact(value) for value in record.args)
        return True
