"""POST /ManagementServer/MDM.svc: OMA-DM sessions through the Django test client (MS-MDM).

The reply rules checked here are those of docs/omadm-sessions.md."""
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from management import commands
from enrollment.models import Device
from management.models import DeviceCommand, ManagementSession
from pki.models import CertificateAuthority
from tests import omadm_messages as sml
from tests.factories_enrollment import (DeviceCommandFactory, DeviceFactory, certificate_header, certified_device,
                                        create_ca_chain)

pytestmark = pytest.mark.django_db

REBOOT = "./Device/Vendor/MSFT/Reboot/RebootNow"


@pytest.fixture
def chain():
    return create_ca_chain()


@pytest.fixture
def pc(chain):
    """An enrolled PC whose inventory is already fresh, so only queued commands are sent."""
    device, cert = certified_device(inventory_requested_at=timezone.now())
    return device, cert


def post(client, body, cert=None, remote="127.0.0.1", content_type=sml.CONTENT_TYPE, url=sml.URL):
    extra = {"REMOTE_ADDR": remote}
    if cert is not None:
        extra["HTTP_X_SSL_CLIENT_CERT"] = certificate_header(cert)
    return client.post(url, body, content_type=content_type, **extra)


def checkin(client, device, cert, **kwargs):
    response = post(client, sml.package1(device.device_id, **kwargs), cert)
    assert response.status_code == 200, response.content
    return sml.read(response.content)


def answer(client, device, cert, body, *, msg, session="1"):
    response = post(client, sml.message(device.device_id, body, msg=msg, session=session), cert)
    assert response.status_code == 200, response.content
    return sml.read(response.content)


# --- the session ------------------------------------------------------------------------------------

def test_package_one_gets_header_status_a_status_per_command_then_queued_commands(client, pc):
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null", source="console:reboot")

    response = post(client, sml.package1(device.device_id), cert)

    assert response.status_code == 200
    assert response["Content-Type"] == sml.CONTENT_TYPE
    assert int(response["Content-Length"]) == len(response.content)
    reply = sml.read(response.content)
    assert (reply.msg_id, reply.target) == ("1", device.device_id)
    assert reply.statuses == [("1", "1", "0", "SyncHdr", "200"), ("2", "1", "2", "Alert", "200"),
                              ("3", "1", "3", "Alert", "200"), ("4", "1", "4", "Replace", "200")]
    assert reply.commands == [("Exec", "5", REBOOT, "null", "")]
    assert reply.final
    reboot.refresh_from_db()
    assert (reboot.status, reboot.msg_id, reboot.cmd_id, reboot.attempts) == (DeviceCommand.Status.SENT, 1, 5, 1)
    device.refresh_from_db()
    assert device.last_seen_at and device.login_status == "user"
    assert (device.manufacturer, device.model) == ("Microsoft Corporation", "Surface Laptop 5")


def test_management_path_is_case_insensitive_and_post_only(client, pc):
    device, cert = pc
    assert post(client, sml.package1(device.device_id), cert, url="/managementserver/mdm.svc").status_code == 200
    assert client.get("/ManagementServer/MDM.svc").status_code == 405


def test_statuses_and_results_close_queue_items_and_a_status_only_reply_ends_the_session(client, pc):
    device, cert = pc
    get = commands.queue(device, "Get", "./DevDetail/SwV")
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    first = checkin(client, device, cert)
    (_, get_id, *_), (_, reboot_id, *_) = first.commands

    reply = answer(client, device, cert, [
        sml.status(1, 1, 0, "SyncHdr", 200),
        sml.status(2, 1, get_id, "Get", 200),
        sml.results(3, 1, get_id, "./DevDetail/SwV", "10.0.22631.4460"),
        sml.status(4, 1, reboot_id, "Exec", 500),
    ], msg=2)

    assert reply.msg_id == "2"
    assert reply.statuses == [("1", "2", "0", "SyncHdr", "200")]
    assert reply.commands == [] and reply.final
    get.refresh_from_db()
    reboot.refresh_from_db()
    assert (get.status, get.status_code, get.result_data, get.result_format) == (
        DeviceCommand.Status.SUCCEEDED, 200, "10.0.22631.4460", "chr")
    assert (reboot.status, reboot.status_code) == (DeviceCommand.Status.FAILED, 500)
    assert get.completed_at and reboot.completed_at
    assert ManagementSession.objects.get(device=device).ended_at is not None


def test_session_without_commands_ends_with_the_first_reply(client, pc):
    device, cert = pc
    reply = checkin(client, device, cert)
    assert reply.commands == [] and reply.final
    session = ManagementSession.objects.get(device=device)
    assert session.ended_at and (session.server_msg_id, session.client_msg_id) == (1, 1)


def test_multi_message_session_keeps_msg_ids_and_refs(client, pc, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 2
    device, cert = pc
    queued = [commands.queue(device, "Get", f"./DevInfo/{node}") for node in ("Man", "Mod", "Lang")]

    first = checkin(client, device, cert)
    assert [c[2] for c in first.commands] == ["./DevInfo/Man", "./DevInfo/Mod"]
    second = answer(client, device, cert, [sml.status(1, 1, 0, "SyncHdr", 200)] + [
        sml.status(i + 2, 1, c[1], "Get", 200) for i, c in enumerate(first.commands)], msg=2)
    assert second.msg_id == "2" and second.header_status == ("1", "2", "0", "SyncHdr", "200")
    assert [(c[1], c[2]) for c in second.commands] == [("2", "./DevInfo/Lang")]
    third = answer(client, device, cert, [sml.status(1, 2, 0, "SyncHdr", 200), sml.status(2, 2, 2, "Get", 200)], msg=3)
    assert third.msg_id == "3" and third.commands == []
    assert {c.status for c in DeviceCommand.objects.filter(pk__in=[q.pk for q in queued])} == {DeviceCommand.Status.SUCCEEDED}
    last = DeviceCommand.objects.get(pk=queued[2].pk)
    assert (last.msg_id, last.cmd_id) == (2, 2)


def test_status_for_something_we_never_sent_is_ignored(client, pc):
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    checkin(client, device, cert)
    reply = answer(client, device, cert, [sml.status(2, 1, 99, "Get", 200), sml.status(3, 7, 5, "Exec", 200)], msg=2)
    assert reply.header_status[4] == "200"
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.QUEUED  # unanswered: back in the queue for next time


def test_message_without_final_gets_a_next_message_alert_and_no_commands(client, pc):
    device, cert = pc
    commands.queue(device, "Exec", REBOOT, format="null")
    body = sml.message(device.device_id, [sml.alert(2, 1201)], final=False)
    reply = sml.read(post(client, body, cert).content)
    assert reply.alerts == ["1222"] and reply.commands == [] and not reply.final


def test_user_scoped_commands_wait_for_a_signed_in_user(client, pc):
    device, cert = pc
    user_cmd = commands.queue(device, "Replace", "./User/Vendor/MSFT/Policy/Config/X/Y", format="int", data="1")
    reply = checkin(client, device, cert, login="none")
    assert reply.commands == []
    reply = checkin(client, device, cert, login="user", session="2")
    assert [c[2] for c in reply.commands] == [user_cmd.target]


def test_other_client_events_are_recorded_on_the_session(client, pc):
    device, cert = pc
    body = sml.message(device.device_id, [
        sml.alert(2, 1201), sml.alert(3, 1224, sml.typed_item("com.microsoft/MDM/BootstrapSync", "start")),
        sml.alert(4, 1226, sml.typed_item("com.microsoft/MDM/Win32CSP", "0", source="./Vendor/MSFT/X"))])
    checkin_reply = sml.read(post(client, body, cert).content)
    assert [s[4] for s in checkin_reply.statuses] == ["200"] * 4
    events = ManagementSession.objects.get(device=device).events
    assert [(e["alert"], e["type"]) for e in events] == [("1224", "com.microsoft/MDM/BootstrapSync"),
                                                          ("1226", "com.microsoft/MDM/Win32CSP")]


# --- 1226 unenrollment ------------------------------------------------------------------------------

def test_unenrollment_alert_unenrolls_the_device_and_revokes_its_certificate(client, pc):
    device, cert = pc
    pending = commands.queue(device, "Exec", REBOOT, format="null")
    body = sml.message(device.device_id, [sml.alert(2, 1201), sml.alert(3, 1226, sml.typed_item(
        "com.microsoft:mdm.unenrollment.userrequest", "1", source="./Vendor/MSFT/DMClient/Unenroll", fmt="int"))])

    reply = sml.read(post(client, body, cert).content)

    assert reply.status_for(3)[4] == "200" and reply.commands == []
    device.refresh_from_db()
    pending.refresh_from_db()
    assert device.status == Device.Status.UNENROLLED and device.revoked_at
    assert pending.status == DeviceCommand.Status.CANCELLED
    assert AuditEvent.objects.filter(action="device.unenrolled", target_id=str(device.pk)).exists()
    assert post(client, sml.package1(device.device_id, session="2"), cert).status_code == 403


# --- who is talking ---------------------------------------------------------------------------------

def test_no_certificate_and_no_credentials_is_challenged_with_the_current_nonce(client, pc):
    device, _ = pc
    commands.queue(device, "Exec", REBOOT, format="null")
    old_nonce = device.appsrv_nonce

    reply = sml.read(post(client, sml.package1(device.device_id)).content)

    assert reply.statuses == [("1", "1", "0", "SyncHdr", "407")] and reply.commands == []
    device.refresh_from_db()
    # A request that proved nothing changes nothing, not even the nonce the device must answer.
    assert reply.chal_nonce == device.appsrv_nonce == old_nonce
    assert AuditEvent.objects.filter(action="management.challenged", target_id=str(device.pk)).exists()
    assert device.last_seen_at is None


def test_unknown_device_without_certificate_is_refused(client, chain):
    response = post(client, sml.package1("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="management.refused").exists()


def test_certificate_of_another_ca_is_refused(client, pc):
    device, cert = pc
    CertificateAuthority.objects.update(active=False)
    create_ca_chain()  # a new active CA: the device's certificate is no longer ours
    response = post(client, sml.package1(device.device_id), cert)
    assert response.status_code == 403
    assert AuditEvent.objects.get(action="management.refused").detail["reason"] == "certificate not issued by our CA"


def test_revoked_certificate_is_refused(client, chain):
    device, cert = certified_device(replaced=True)
    assert post(client, sml.package1(device.device_id), cert).status_code == 403
    assert AuditEvent.objects.filter(action="management.refused", target_id=str(device.pk)).exists()


def test_certificate_header_from_an_untrusted_address_is_not_believed(client, pc):
    device, cert = pc
    commands.queue(device, "Exec", REBOOT, format="null")
    reply = sml.read(post(client, sml.package1(device.device_id), cert, remote="198.51.100.7").content)
    assert reply.header_status[4] == "407" and reply.commands == []
    assert AuditEvent.objects.filter(action="management.untrusted_certificate_header").exists()


def test_certificate_of_device_a_naming_enrolled_device_b_is_refused(client, pc):
    device_a, cert_a = pc
    device_b = DeviceFactory()
    response = post(client, sml.package1(device_b.device_id), cert_a)
    assert response.status_code == 403
    event = AuditEvent.objects.get(action="management.refused")
    assert event.target_id == str(device_a.pk) and "another device" in event.detail["reason"]


def test_source_naming_no_known_device_is_only_logged(client, pc, caplog):
    device, cert = pc
    response = post(client, sml.package1("0123456789ABCDEF0123456789ABCDEF"), cert)
    assert response.status_code == 200
    assert "names no device" in caplog.text


def digest_device(secret="s3cret"):
    device = DeviceFactory(inventory_requested_at=timezone.now())
    device.appsrv_digest = sml.appsrv_digest(device.device_id, secret)
    device.save()
    return device


def test_wrong_digest_is_challenged_again_and_audited(client, chain):
    device = digest_device()
    cred = ("syncml:auth-md5", sml.md5_cred(device.device_id, "wrong", device.appsrv_nonce))
    reply = sml.read(post(client, sml.package1(device.device_id, cred=cred)).content)
    assert reply.header_status[4] == "401" and reply.chal_nonce and reply.commands == []
    assert AuditEvent.objects.get(action="management.challenged").detail["reason"].startswith("wrong")


def test_right_digest_is_accepted_for_its_message_with_a_next_nonce_for_the_next(client, chain):
    device = digest_device()
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    old_nonce = device.appsrv_nonce
    cred = ("syncml:auth-md5", sml.md5_cred(device.device_id, "s3cret", old_nonce))

    reply = sml.read(post(client, sml.package1(device.device_id, cred=cred)).content)

    # 200, not 212: the credentials vouch for this message only (OMA DM 1.2 Security).
    assert reply.header_status[4] == "200" and [c[2] for c in reply.commands] == [REBOOT]
    device.refresh_from_db()
    assert reply.chal_nonce == device.appsrv_nonce != old_nonce
    answer_body = [sml.status(2, 1, reply.commands[0][1], "Exec", 200)]
    # The next message without credentials is challenged and not acted on...
    bare = sml.read(post(client, sml.message(device.device_id, answer_body, msg=2)).content)
    assert bare.statuses == [("1", "2", "0", "SyncHdr", "407")] and bare.chal_nonce == reply.chal_nonce
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.SENT
    # ...with credentials made with the NextNonce, it is.
    next_cred = ("syncml:auth-md5", sml.md5_cred(device.device_id, "s3cret", reply.chal_nonce))
    follow = sml.read(post(client, sml.message(device.device_id, answer_body, msg=3, cred=next_cred)).content)
    assert follow.header_status[4] == "200" and follow.msg_id == "2"
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.SUCCEEDED
    # Each nonce is good for one message: neither digest opens another session.
    for spent in (cred, next_cred):
        replay = sml.read(post(client, sml.package1(device.device_id, cred=spent, session="2")).content)
        assert replay.header_status[4] == "401"


def test_basic_credentials_are_answered_with_an_md5_challenge(client, chain):
    """Even the right secret in syncml:auth-basic: the server provisions DIGEST, and a basic credential
    would authenticate any message it is copied into."""
    import base64

    device = digest_device()
    good = ("syncml:auth-basic", base64.b64encode(f"{device.device_id}:s3cret".encode()).decode())
    reply = sml.read(post(client, sml.package1(device.device_id, cred=good)).content)
    assert reply.header_status[4] == "401" and reply.chal_nonce
    md5 = ("syncml:auth-md5", sml.md5_cred(device.device_id, "s3cret", reply.chal_nonce))
    assert sml.read(post(client, sml.package1(device.device_id, cred=md5, session="2")).content).header_status[4] == "200"


# --- the queue --------------------------------------------------------------------------------------

def test_commands_are_delivered_in_sequence_and_never_again_once_acknowledged(client, pc):
    device, cert = pc
    targets = [f"./DevInfo/{n}" for n in ("Man", "Mod", "Lang", "DmV")]
    for target in targets:
        commands.queue(device, "Get", target)
    first = checkin(client, device, cert)
    assert [c[2] for c in first.commands] == targets
    answer(client, device, cert, [sml.status(i + 2, 1, c[1], "Get", 200) for i, c in enumerate(first.commands)], msg=2)
    again = checkin(client, device, cert, session="2")
    assert again.commands == []


def test_unanswered_command_is_sent_once_more_then_failed(client, pc):
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    for session in ("1", "2"):
        reply = checkin(client, device, cert, session=session)
        assert [c[2] for c in reply.commands] == [REBOOT]
        answer(client, device, cert, [sml.status(1, 1, 0, "SyncHdr", 200)], msg=2, session=session)
    reboot.refresh_from_db()
    assert (reboot.status, reboot.attempts) == (DeviceCommand.Status.FAILED, 2)
    assert "No answer" in reboot.note
    assert checkin(client, device, cert, session="3").commands == []


def test_command_of_an_abandoned_session_goes_back_to_the_queue(client, pc):
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    checkin(client, device, cert, session="1")
    ManagementSession.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    reply = checkin(client, device, cert, session="2")
    assert [c[2] for c in reply.commands] == [REBOOT]
    reboot.refresh_from_db()
    assert reboot.attempts == 2


def test_expired_commands_time_out_instead_of_being_sent(client, pc):
    device, cert = pc
    stale = DeviceCommandFactory(device=device, expired=True)
    assert checkin(client, device, cert).commands == []
    stale.refresh_from_db()
    assert stale.status == DeviceCommand.Status.TIMED_OUT


def test_cancelled_commands_are_not_sent(client, pc):
    device, cert = pc
    commands.cancel(commands.queue(device, "Exec", REBOOT, format="null"))
    assert checkin(client, device, cert).commands == []


# A message's writes (the session, the commands sent or answered, the device): one statement on
# PostgreSQL (management/checkin_sql.py), one per kind of row on SQLite.
MORE_WRITES = 0 if connection.vendor == "postgresql" else 2


def test_queries_per_message_do_not_grow_with_devices_or_commands(client, chain, django_assert_num_queries):
    def run(count):
        device, cert = certified_device(key_index=count, inventory_requested_at=timezone.now())
        DeviceFactory.create_batch(count)
        for i in range(count):
            commands.queue(device, "Get", f"./DevDetail/Node{i}")
        # The device's first session: the device (with the CA and whether it has idle sessions, overdue
        # commands, an Autopilot setup, a reconciliation still valid or a setting for the reconciler: it
        # has none of them), the session with the queue, the configuration's reconciliation (its mark,
        # its groups' settings and its setting states: three statements), the queue read again after
        # it, and one write of everything
        # (management/checkin_sql.py). The test's own transaction makes ours a savepoint: two of the
        # counted queries are SAVEPOINT and RELEASE.
        with django_assert_num_queries(9 + MORE_WRITES):
            first = checkin(client, device, cert)
        assert len(first.commands) == count
        # Every command answered: the device, the session with its commands awaiting an answer and the
        # queue (one statement), the write; the session's end has nothing to put back in the queue.
        with django_assert_num_queries(5 + MORE_WRITES):
            answer(client, device, cert, [sml.status(i + 2, 1, c[1], "Get", 200) for i, c in enumerate(first.commands)] +
                   [sml.results(i + 100, 1, c[1], c[2], "x") for i, c in enumerate(first.commands)], msg=2)
        # The next session, nothing changed in its groups since: no reconciliation, so the device, the
        # session with the queue, and the write.
        for i in range(count):
            commands.queue(device, "Get", f"./DevDetail/Other{i}")
        with django_assert_num_queries(5 + MORE_WRITES):
            later = checkin(client, device, cert, session="2")
        assert len(later.commands) == count
        return device

    for count in (1, 30):
        device = run(count)
        assert set(device.commands.exclude(target__contains="Other").values_list("status", flat=True)) == {
            DeviceCommand.Status.SUCCEEDED}


def test_a_digest_message_costs_the_queries_of_a_certificate_message(client, chain, django_assert_num_queries):
    device = digest_device()
    for i in range(3):
        commands.queue(device, "Get", f"./DevDetail/Node{i}")
    cred = ("syncml:auth-md5", sml.md5_cred(device.device_id, "s3cret", device.appsrv_nonce))
    # The digest is checked against the device's row, read anyway; its NextNonce is written by the
    # device's UPDATE that every message makes (last_seen_at): no statement of its own. (Its first
    # session: the reconciliation's three statements, as for a certificate.)
    with django_assert_num_queries(9 + MORE_WRITES):
        first = sml.read(post(client, sml.package1(device.device_id, cred=cred)).content)
    body = [sml.status(i + 2, 1, c[1], "Get", 200) for i, c in enumerate(first.commands)]
    # Without credentials: the device's row, the session's, and the audit entry counted per address and
    # minute (AuditEvent.record_refusal: the UPDATE of this minute's row, and for the first refusal of
    # the minute the count of the address's rows and the INSERT in a savepoint); nothing else written.
    with django_assert_num_queries(9):
        challenged = sml.read(post(client, sml.message(device.device_id, body, msg=2)).content)
    assert challenged.header_status[4] == "407"
    cred = ("syncml:auth-md5", sml.md5_cred(device.device_id, "s3cret", first.chal_nonce))
    with django_assert_num_queries(5 + MORE_WRITES):
        second = sml.read(post(client, sml.message(device.device_id, body, msg=3, cred=cred)).content)
    assert [first.header_status[4], second.header_status[4]] == ["200", "200"] and second.commands == []


# --- inventory --------------------------------------------------------------------------------------

HOLOLENS_VALUES = {
    "./DevInfo/Man": "Microsoft Corporation", "./DevInfo/Mod": "HoloLens 2",
    "./DevDetail/SwV": "10.0.22621.1133", "./DevDetail/Ext/Microsoft/DeviceName": "HOLOLENS-7F3A",
    "./DevDetail/Ext/Microsoft/OSPlatform": "Windows Holographic for Business",
    "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": "0123456789", "./DevDetail/Ext/Microsoft/ProcessorArchitecture": "12",
    "./DevDetail/Ext/Microsoft/TotalRAM": "4096", "./DevDetail/Ext/DeviceHardwareData": "T0FBQUFB",
    "./Vendor/MSFT/DeviceStatus/OS/Edition": "136",
}


def test_first_session_collects_the_inventory_and_recognises_a_hololens(client, chain):
    device, cert = certified_device(name="", os_edition=None)
    first = checkin(client, device, cert, model="HoloLens 2")
    gets = {c[2]: c[1] for c in first.commands if c[0] == "Get"}
    assert set(HOLOLENS_VALUES) <= set(gets)
    body = [sml.status(i + 2, 1, cmd_id, "Get", 200) for i, cmd_id in enumerate(gets.values())]
    body += [sml.results(i + 100, 1, gets[uri], uri, value) for i, (uri, value) in enumerate(HOLOLENS_VALUES.items())]
    answer(client, device, cert, body, msg=2)

    device.refresh_from_db()
    assert device.kind == Device.Kind.HOLOLENS
    assert (device.model, device.os_version, device.name, device.serial_number) == (
        "HoloLens 2", "10.0.22621.1133", "HOLOLENS-7F3A", "0123456789")
    assert (device.architecture, device.total_ram_mb, device.os_edition, device.hardware_data) == ("ARM64", 4096, 136, "T0FBQUFB")
    assert device.os_platform == "Windows Holographic for Business" and device.inventory_at
    assert device.inventory["./DevInfo/Mod"] == "HoloLens 2"
    # Not asked again the same day.
    assert [c for c in checkin(client, device, cert, session="2").commands if c[0] == "Get"] == []


def test_inventory_is_asked_again_after_the_interval(client, chain):
    device, cert = certified_device(inventory_requested_at=timezone.now() - timedelta(hours=25))
    assert len(checkin(client, device, cert).commands) >= 18


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"<SyncML",
    b"<?xml version='1.0'?><!DOCTYPE SyncML [<!ENTITY x 'y'>]><SyncML xmlns='SYNCML:SYNCML1.2'/>",
    b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><SessionID>1</SessionID><MsgID>99999999999</MsgID>"
    b"<Source><LocURI>d</LocURI></Source></SyncHdr><SyncBody/></SyncML>",
])
def test_malformed_messages_get_400_and_change_nothing(client, pc, body):
    device, cert = pc
    response = post(client, body, cert)
    assert response.status_code == 400
    assert not ManagementSession.objects.exists()


def test_wbxml_and_other_types_get_415(client, pc):
    device, cert = pc
    body = sml.package1(device.device_id)
    for content_type in ("application/vnd.syncml.dm+wbxml", "text/xml"):
        response = post(client, body, cert, content_type=content_type)
        assert response.status_code == 415
        assert response["Accept"] == "application/vnd.syncml.dm+xml"  # what to fall back to
    assert not ManagementSession.objects.exists()


def test_oversized_body_gets_413(client, pc, settings):
    settings.ENROLLMENT_MAX_BODY_BYTES = 1024
    device, cert = pc
    assert post(client, sml.package1(device.device_id) + b" " * 2048, cert).status_code == 413


def test_retransmitted_message_gets_the_same_answer_and_a_reused_msg_id_a_400(client, pc, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 1
    device, cert = pc
    first_cmd = commands.queue(device, "Get", "./DevInfo/Man")
    second_cmd = commands.queue(device, "Get", "./DevInfo/Mod")
    package = sml.package1(device.device_id)
    first = post(client, package, cert).content
    assert post(client, package, cert).content == first  # a retry of the same message
    cmd_id = sml.read(first).commands[0][1]
    message2 = sml.message(device.device_id, [sml.status(2, 1, cmd_id, "Get", 200)], msg=2)
    second = post(client, message2, cert).content
    assert post(client, message2, cert).content == second
    second_id = sml.read(second).commands[0][1]

    forged = sml.message(device.device_id, [sml.status(2, 2, second_id, "Get", 200)], msg=2)
    duplicate = sml.read(post(client, forged, cert).content)

    assert duplicate.header_status[4] == "400" and duplicate.commands == []
    first_cmd.refresh_from_db()
    second_cmd.refresh_from_db()
    assert (first_cmd.status, second_cmd.status) == (DeviceCommand.Status.SUCCEEDED, DeviceCommand.Status.SENT)
    assert ManagementSession.objects.get().client_msg_id == 2


def test_unknown_and_misdirected_commands_get_error_statuses(client, pc):
    device, cert = pc
    body = sml.message(device.device_id, [sml.alert(2, 1201), sml.S.Frobnicate(sml.S.CmdID("3")),
                                          sml.S.Get(sml.S.CmdID("4")), sml.alert(5, 9999)])
    reply = sml.read(post(client, body, cert).content)
    assert [(s[3], s[4]) for s in reply.statuses[1:]] == [("Alert", "200"), ("Frobnicate", "400"), ("Get", "406"),
                                                          ("Alert", "406")]


def test_huge_result_is_not_kept_but_the_status_is(client, pc, settings):
    settings.ENROLLMENT_MAX_RESULT_BYTES = 100
    device, cert = pc
    get = commands.queue(device, "Get", "./DevDetail/Ext/DeviceHardwareData")
    cmd_id = checkin(client, device, cert).commands[0][1]
    answer(client, device, cert, [sml.status(2, 1, cmd_id, "Get", 200),
                                  sml.results(3, 1, cmd_id, get.target, "A" * 5000)], msg=2)
    get.refresh_from_db()
    assert get.status == DeviceCommand.Status.SUCCEEDED and get.result_data == "" and "not kept" in get.note


def test_a_session_start_sends_the_settings_of_a_group_the_device_joined_by_rule_since(client, pc):
    from tests.factories_enrollment import ConfigurationGroupFactory, GroupSettingFactory

    device, cert = pc
    GroupSettingFactory(tenant_lockdown=True,
                        group=ConfigurationGroupFactory(rule_enabled=True, rule_name_pattern="LAB-*"))
    Device.objects.filter(pk=device.pk).update(name="LAB-7")  # renamed since: no reconcile ran

    checkin(client, device, cert)

    sent = DeviceCommand.objects.get(device=device, target="./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE")
    assert (sent.status, sent.data) == (DeviceCommand.Status.SENT, "true")


def test_a_sign_in_reported_in_the_message_releases_the_users_commands_in_its_reply(client, pc):
    # The queue is read with the session, before the message's LoginStatus is applied: a sign-in it
    # reports reads it again, so the commands held for a user go out in this reply, not the next.
    device, cert = pc
    assert checkin(client, device, cert, login="none").commands == []  # nobody signed in, inventory known
    user_command = commands.queue(device, "Get", "./User/Vendor/MSFT/Policy/Config/Camera/AllowCamera")
    reply = checkin(client, device, cert, login="user", session="2")
    assert [c[2] for c in reply.commands] == [user_command.target]


def test_a_session_restarted_under_the_same_sessionid_resends_what_its_first_run_left_unanswered(client, pc):
    # The device started over with the SessionID of an open session: that session is closed and its
    # unanswered commands go back to the queue, after the queue was read with the session; the reply
    # still carries them.
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    assert [c[2] for c in checkin(client, device, cert).commands] == [REBOOT]
    again = checkin(client, device, cert, model="Surface Pro 10")  # not a copy of the first: a new start
    assert [c[2] for c in again.commands] == [REBOOT]
    reboot.refresh_from_db()
    assert reboot.attempts == 2
