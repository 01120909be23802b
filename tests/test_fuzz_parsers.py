"""Property-based tests of the parsers devices and administrators feed us (hardening): each
one either returns its result or raises its own documented error, never anything else."""
import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autopilot import imports as autopilot_imports
from enrollment import soap, wstep
from management import syncml
from pki.csr import CsrError, ParsedCsr, parse_csr
from invitations import user_import
from simulator import build_windows_csr
from tests import fuzzing
from tests import omadm_messages as sml
from tests.enrollment_soap import (
    DEVICE_ID, FIXTURES, discover_body, get_policies_body, get_policies_token_body, password_security, rst_body,
    windows_csr,
)
from tests.factories_enrollment import rsa_key

pytestmark = pytest.mark.fuzz

WINDOWS_CSR = (FIXTURES.parent / "windows_csr_sha1.der").read_bytes()
SOAP_SEEDS = [
    discover_body(), discover_body(policies=("OnPremise", "Federated")),
    get_policies_body("alice@example.com", "secret"), get_policies_token_body("token"),
    rst_body(password_security("alice@example.com", "secret"), windows_csr(rsa_key(0))),
]
SYNCML_SEEDS = [(FIXTURES.parent / "syncml" / "package1.xml").read_bytes(),
                sml.package1(DEVICE_ID, cred=("syncml:auth-md5", "AAAA")),
                sml.message(DEVICE_ID, [sml.status(1, 1, 0, "SyncHdr", 200), sml.results(2, 1, 3, "./x", "v"),
                                        sml.S.Atomic(sml.S.CmdID("4"), sml.alert(5, 1226))], msg="2")]


# --- SOAP envelope (enrollment/soap.py) ---------------------------------------------------------------

@given(fuzzing.bodies(SOAP_SEEDS))
def test_envelope_parser_returns_an_envelope_or_a_message_format_fault(data):
    try:
        envelope = soap.parse_envelope(data)
    except soap.SoapFault as fault:
        assert fault.subcode == soap.Fault.MESSAGE_FORMAT
        return
    assert envelope.body is not None and isinstance(envelope.action, str)
    assert envelope.root.getroottree().docinfo.doctype == ""


@given(st.sampled_from(SOAP_SEEDS), st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))
def test_envelope_in_any_unicode_encoding_still_refuses_a_doctype(seed, encoding):
    """The byte-level DOCTYPE check cannot see one written in UTF-16: the parsed tree's own check must."""
    text = seed.decode()
    if text.startswith("<?xml"):
        text = text.split("?>", 1)[1]
    body = f'<?xml version="1.0" encoding="{encoding.split("-sig")[0]}"?><!DOCTYPE x [<!ENTITY e "e">]>{text}'
    with pytest.raises(soap.SoapFault) as raised:
        soap.parse_envelope(body.encode(encoding))
    assert raised.value.subcode == soap.Fault.MESSAGE_FORMAT


# --- WSTEP RST and its context items (enrollment/wstep.py) ---------------------------------------------

RST_SEEDS = [rst_body(password_security("alice@example.com", "secret"), windows_csr(rsa_key(i))) for i in (0, 1)]


@given(fuzzing.mutated_xml(RST_SEEDS, max_byte_edits=0))
def test_rst_parser_returns_a_checked_request_or_a_fault(data):
    try:
        envelope = soap.parse_envelope(data)
    except soap.SoapFault:
        return
    try:
        request = wstep.parse_request(envelope.body)
    except soap.SoapFault as fault:
        assert fault.subcode in (soap.Fault.MESSAGE_FORMAT, soap.Fault.CERTIFICATE_REQUEST, soap.Fault.AUTHORIZATION)
        return
    # What parse_request lets through is what the enrollment writes: bounded and printable.
    assert request.device_id and len(request.device_id) <= 64 and request.device_id.isprintable()
    assert request.enrollment_type in ("Full", "Device")
    assert len(request.hw_dev_id) <= 128 and request.csr_der
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in request.items)
    assert request.os_edition is None or 0 <= request.os_edition < 10**9


@given(st.lists(st.tuples(st.one_of(st.sampled_from(["DeviceID", "EnrollmentType", "OSEdition", "HWDevID",
                                                        "DeviceName", "", " DeviceID "]), fuzzing.xml_name()),
                          fuzzing.xml_text()), max_size=12))
def test_context_items_are_read_in_order_with_repeats(items):
    items = [(name, value) for name, value in items if _xml_safe(name + value)]
    context = "".join(f'<ac:ContextItem Name="{_attr(name)}"><ac:Value>{_esc(value)}</ac:Value></ac:ContextItem>'
                      for name, value in items)
    body = (f'<wst:RequestSecurityToken xmlns:wst="{soap.WST_NS}" xmlns:ac="{soap.AC_NS}">'
            f"<ac:AdditionalContext>{context}</ac:AdditionalContext></wst:RequestSecurityToken>")
    from lxml import etree

    parsed = wstep.context_items(etree.fromstring(body.encode()))
    assert parsed == [[name.strip(), value.strip()] for name, value in items]


def _xml_safe(value):
    return all(c in "\t\n\r" or (" " <= c and c not in "\ufffe\uffff") for c in value)


def _esc(value):
    # A literal CR would reach the parser as LF (XML end-of-line handling); a device escapes it to keep it.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(value):
    # Attribute values are normalised by XML (tabs and newlines become spaces), as a device's would be.
    return _esc(value).replace('"', "&quot;").replace("\t", " ").replace("\n", " ").replace("\r", " ")


# --- PKCS#10 (pki/csr.py) ----------------------------------------------------------------------

def _csr_or_error(der):
    try:
        return parse_csr(der)
    except CsrError as exc:
        assert str(exc) and "\\x" not in str(exc)  # a safe message, never request bytes
        return None


@given(st.integers(0, len(WINDOWS_CSR) - 1), st.integers(1, 255))
def test_any_single_byte_change_of_a_windows_request_is_refused(position, xor):
    der = bytearray(WINDOWS_CSR)
    der[position] ^= xor
    assert _csr_or_error(bytes(der)) is None


@given(st.sampled_from([WINDOWS_CSR, build_windows_csr(rsa_key(0), DEVICE_ID, hash_name="sha256")]),
       st.data())
def test_truncated_extended_or_spliced_requests_are_refused_cleanly(der, data):
    edited = data.draw(fuzzing.byte_edit(der))
    result = _csr_or_error(edited)
    if result is not None:
        assert isinstance(result, ParsedCsr)
        assert edited == der or result.public_key.public_numbers() == parse_csr(der).public_key.public_numbers()


@given(st.binary(max_size=2048))
def test_random_bytes_are_never_a_certificate_request(der):
    assert _csr_or_error(der) is None


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64),
       st.sampled_from(["sha1", "sha256", "sha384", "sha512"]), st.integers(0, 3))
def test_a_windows_shaped_request_gives_back_its_key_and_device_id(device_id, hash_name, key_index):
    parsed = parse_csr(build_windows_csr(rsa_key(key_index), device_id, hash_name=hash_name))
    assert parsed.device_id == device_id and parsed.hash_name == hash_name
    assert parsed.public_key.public_numbers() == rsa_key(key_index).public_key().public_numbers()


# --- SyncML (management/syncml.py) ---------------------------------------------------------------------

@given(fuzzing.bodies(SYNCML_SEEDS))
def test_syncml_parser_returns_a_message_or_a_syncml_error(data):
    try:
        message = syncml.parse(data)
    except syncml.SyncMLError:
        return
    assert message.header.session_id and message.header.msg_id.isdigit() and message.header.source
    assert len(message.commands) <= syncml.MAX_COMMANDS
    for command in message.commands:
        assert isinstance(command.name, str) and isinstance(command.data, str)
        assert all(not child.children for child in command.children)


PRINTABLE = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
                    min_size=1, max_size=40).map(str.strip).filter(bool)


@given(PRINTABLE, PRINTABLE, st.integers(1, 2**31 - 1), st.lists(st.tuples(PRINTABLE, PRINTABLE), max_size=5))
def test_syncml_we_build_is_read_back_unchanged(session, source, msg_id, commands):
    header = syncml.Header(ver_dtd="1.2", ver_proto="DM/1.2", session_id=session, msg_id=str(msg_id),
                           target="https://mdm.example.com/x", source=source)
    outgoing = [syncml.Outgoing("Replace", target, format="chr", data=value) for target, value in commands]
    body, sent = syncml.build(request_header=header, msg_id=msg_id, server_url="https://mdm.example.com/x",
                              statuses=[syncml.Status("1", "0", "SyncHdr", 200)], commands=outgoing)
    message = syncml.parse(body)
    assert (message.header.session_id, message.header.msg_id, message.header.target) == (session, str(msg_id), source)
    replaces = [c for c in message.commands if c.name == "Replace"]
    assert [(c.items[0].target, c.items[0].data) for c in replaces] == commands
    assert list(sent) == [c.cmd_id for c in replaces]


# --- CSV imports (invitations/user_import.py, autopilot/imports.py) -----------------------------------

CELL = st.one_of(st.sampled_from(["", " ", "alice@example.com", "fr", "en", "xx", "5", "-1", "99999", "CORP\\x",
                                  '"', "a,b", "a;b", "line\nbreak", "=cmd|' /C calc'!A0", "SN-1", "AAAA", "0"]),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))


def _csv_bytes(header, rows, delimiter):
    out = io.StringIO()
    # CRLF: the writer then quotes cells holding a bare CR or LF, which the readers would split on.
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _delimiter_detectable(header, delimiter):
    """Both readers guess the separator from the header line: a one-column header shows none."""
    return delimiter == "," or len(header) > 1


def _data_lines(rows):
    return [row for row in rows if any(cell.strip() for cell in row)]


@pytest.mark.django_db
@given(st.lists(st.sampled_from(user_import.COLUMNS), min_size=1, max_size=5, unique=True),
       st.lists(st.lists(CELL, min_size=0, max_size=7), max_size=15), st.sampled_from([",", ";"]))
def test_user_csv_report_lists_every_row_or_says_why_the_file_is_refused(columns, rows, delimiter):
    header = ["email", *[c for c in columns if c != "email"]]
    data = _csv_bytes(header, rows, delimiter)
    try:
        parsed = user_import.read_csv(data)
    except user_import.FileError as exc:
        assert str(exc)
        return
    report = user_import.validate(parsed)
    if _delimiter_detectable(header, delimiter):
        assert len(report.rows) == len(_data_lines(rows))
    lines = [row.line for row in report.rows]
    assert lines == sorted(set(lines)) and lines[0] >= 2
    for row in report.rows:
        assert row.errors or set(row.values) == set(user_import.COLUMNS)


def test_user_csv_with_a_nul_is_refused_before_any_query():
    """Found by the property above on PostgreSQL, which refuses NUL in a query (a 500 on the import page)."""
    with pytest.raises(user_import.FileError, match="NUL"):
        user_import.read_csv(b"email,display_name\r\ncarol@example.com\x00,Carol\r\n")


@given(st.binary(max_size=400))
def test_user_csv_reader_refuses_garbage_with_a_file_error(data):
    try:
        rows = user_import.read_csv(data)
    except user_import.FileError:
        return
    assert rows and all(row.line >= 2 for row in rows)


@given(st.lists(st.sampled_from(list(autopilot_imports.COLUMNS)), min_size=1, max_size=5, unique=True),
       st.lists(st.lists(CELL, min_size=0, max_size=7), max_size=15), st.sampled_from([",", ";"]))
def test_autopilot_csv_rows_are_each_validated_or_the_file_is_refused(columns, rows, delimiter):
    header = ["Device Serial Number", *[c for c in columns if c != "Device Serial Number"]]
    data = _csv_bytes(header, rows, delimiter)
    try:
        validated = [autopilot_imports.validate(line, cells) for line, cells in
                     autopilot_imports.read_rows(autopilot_imports.open_text(io.BytesIO(data)))]
    except autopilot_imports.FileError as exc:
        assert str(exc)
        return
    if _delimiter_detectable(header, delimiter):
        assert len(validated) == len(_data_lines(rows))
    for row in validated:
        assert row.errors or (row.serial and row.serial.isprintable())


@pytest.mark.django_db
def test_an_autopilot_line_with_a_nul_is_refused_and_the_others_imported():
    """Found by reading the property above against PostgreSQL, which refuses NUL in text columns."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    content = b"Device Serial Number,Group Tag\r\nSN-1\x00,Lab\r\nSN-2,Lab\x00\r\nSN-3,Lab\r\n"
    device_import = autopilot_imports.run(autopilot_imports.create_import(
        SimpleUploadedFile("devices.csv", content), actor=None).pk)
    results = dict(device_import.rows.values_list("line", "message"))
    assert results == {2: "this line contains NUL characters", 3: "this line contains NUL characters", 4: ""}
    assert device_import.created_count == 1 and device_import.failed_count == 2


@given(st.binary(max_size=400))
def test_autopilot_reader_refuses_garbage_with_a_file_error(data):
    try:
        for line, cells in autopilot_imports.read_rows(autopilot_imports.open_text(io.BytesIO(data))):
            autopilot_imports.validate(line, cells)
    except autopilot_imports.FileError as exc:
        assert str(exc)
