"""Logging filters: one takes the token out of invitation and password reset links, one escapes control
characters.

Django logs the path of refused requests (django.request "Forbidden: /invite/<token>", the CSRF
refusal) and the development server logs every request line; an invitation's token in the journal
is a sign-in link for whoever reads it (OWASP Logging Cheat Sheet: never log access tokens).
Attached to those loggers in settings.LOGGING, so that every handler, not only ours, sees the
redacted record.

A device id, a query parameter or any other text from a request may carry CR, LF or other control
characters; written as they are, they start a line of their own in the journal that looks like a
record we wrote (log forging; OWASP Logging Cheat Sheet: encode CR/LF and other control characters).
EscapeControlCharacters is on every handler of settings.LOGGING, so that one record is one line.
"""
import logging
import re

INVITATION_PATH = re.compile(r"(/invite/)[^/\s?#\"'<>]+")
# A password reset link: /password/reset/<user id>/<token>.
RESET_PATH = re.compile(r"(/password/reset/)[^/\s?#\"'<>]+/[^/\s?#\"'<>]+")
REDACTED = r"\1[redacted]"


def redact(value):
    if not isinstance(value, str):
        return value
    return RESET_PATH.sub(REDACTED, INVITATION_PATH.sub(REDACTED, value))


class RedactInvitationTokens(logging.Filter):
    def filter(self, record):
        record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: redact(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(redact(value) for value in record.args)
        return True


# C0 controls, DEL, C1 controls (NEL among them) and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NAMED = {"\n": "\\n", "\r": "\\r"}


def escape_controls(text):
    """Each control character as Python writes it in a string literal: \\n, \\r, \\t, \\xNN, \\uNNNN."""
    return CONTROL.sub(lambda m: NAMED.get(m.group()) or ascii(m.group())[1:-1], text)


class EscapeControlCharacters(logging.Filter):
    """Escapes the formatted message; a record's traceback (exc_info, stack_info), formatted apart
    from it, keeps its own lines."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the handler's to report (handleError)
            return True
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True
