"""Attacker text never starts a line of its own in the log: a device id, a request parameter or any
other text from a request is logged with its CR, LF and other control characters escaped, so that one
record is one line (OWASP Logging Cheat Sheet: encode CR/LF and other control characters)."""
import logging
import re
from contextlib import contextmanager
from io import StringIO
from unittest import mock

import pytest
from django.test import Client

from tests import entra_tokens as tokens
from tests import omadm_messages as sml
from tests.factories_enrollment import EntraSettingsFactory, JwksSetFactory

pytestmark = pytest.mark.django_db

FORGED = "2026-12-06 19:00:00,000 CRITICAL django.security forged"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def configured_handlers():
    """The handlers settings.LOGGING put on the root logger (what gunicorn's stderr gets), not pytest's."""
    return [handler for handler in logging.getLogger().handlers if type(handler).__module__ != "_pytest.logging"]


@contextmanager
def journal(caplog):
    """What the configured handlers write while the block runs, and the records they were given."""
    handlers = configured_handlers()
    assert handlers, "settings.LOGGING put no handler on the root logger"
    streams = [StringIO() for _ in handlers]
    previous = [handler.setStream(stream) for handler, stream in zip(handlers, streams)]
    caplog.set_level(logging.DEBUG)
    written = {}
    try:
        yield written
    finally:
        for handler, stream in zip(handlers, previous):
            handler.setStream(stream)
        written["texts"] = [stream.getvalue() for stream in streams]
        written["records"] = list(caplog.records)


def assert_one_line_per_record(written):
    records = written["records"]
    assert any(FORGED in record.getMessage() or FORGED.replace(" ", "") in record.getMessage()
               for record in records), "the attacker's text was not logged: this test would prove nothing"
    for text in written["texts"]:
        # A record's traceback (exc_info) follows it on lines of its own, none of them a timestamp.
        lines = text.splitlines()
        assert len([line for line in lines if TIMESTAMP.match(line)]) == len(records), text
        assert not [line for line in lines if line.startswith(FORGED)], text
        assert "\\n" + FORGED in text, text


def test_a_device_id_cannot_forge_a_log_line(caplog):
    body = sml.message("X\n" + FORGED, [sml.alert(2, 1201)])
    with journal(caplog) as written:
        response = Client().post(sml.URL, body, content_type=sml.CONTENT_TYPE)
    assert response.status_code == 403
    assert_one_line_per_record(written)


def test_a_request_parameter_cannot_forge_a_log_line(organisation, caplog):
    """The terms-of-use page logs Windows' client-request-id with its own unexpected errors (and the
    traceback, which stays as it is)."""
    EntraSettingsFactory()
    JwksSetFactory()
    with mock.patch("enrollment.terms.entra.known_user", autospec=True, side_effect=RuntimeError("database down")), \
            journal(caplog) as written:
        response = Client().get("/EnrollmentServer/TermsOfUse", {
            "redirect_uri": "ms-aadj-redir://auth/mdm", "api-version": "1.0", "client-request-id": "\n" + FORGED},
            HTTP_AUTHORIZATION="Bearer " + tokens.make_token())
    assert response.status_code == 302 and "error=server_error" in response["Location"]
    assert "Traceback (most recent call last)" in written["texts"][0]
    assert_one_line_per_record(written)
