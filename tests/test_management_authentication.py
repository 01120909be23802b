"""Every OMA-DM message proves who sent it (OMA DM 1.2 Security; MS-MDM "OMA DM protocol support").

A message is acted on, or answered from the retransmission cache, only once it has authenticated as
the device: by the device's client certificate, or by digest credentials computed with the nonce the
server issued last (the NextNonce of the Chal in the previous reply's SyncHdr Status). Knowing a
DeviceID, a SessionID or the bytes of an earlier message is not enough.
"""
import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from management import commands
from enrollment.models import Device
from management.models import DeviceCommand, ManagementSession
from tests import omadm_messages as sml
from tests.test_management_endpoint import chain, digest_device, pc, post  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.66"
WIFI = "./Vendor/MSFT/WiFi/Profile/Lab/WlanXml"
WIFI_KEY = "correct-horse-battery-staple"
REBOOT = "./Device/Vendor/MSFT/Reboot/RebootNow"
SECRET = "s3cret"
UNENROLL = sml.alert(3, 1226, sml.typed_item("com.microsoft:mdm.unenrollment.userrequest", "1",
                                             source="./Vendor/MSFT/DMClient/Unenroll", fmt="int"))


def queue_wifi(device):
    return commands.queue(device, "Replace", WIFI, format="chr", data=f"<WLANProfile><keyMaterial>{WIFI_KEY}"
                                                                       "</keyMaterial></WLANProfile>")


def cred(device, nonce):
    return ("syncml:auth-md5", sml.md5_cred(device.device_id, SECRET, nonce))


def refused(response):
    """An HTTP refusal, or a SyncHdr challenge that carries nothing else."""
    if response.status_code in (401, 403):
        return True
    reply = sml.read(response.content)
    return reply.header_status[4] in ("401", "407") and reply.commands == [] and reply.statuses[1:] == []


# --- the retransmission cache -----------------------------------------------------------------------

def test_last_message_replayed_without_certificate_from_elsewhere_gets_no_cached_reply(client, pc):
    device, cert = pc
    queue_wifi(device)
    package = sml.package1(device.device_id)
    first = post(client, package, cert)
    assert WIFI_KEY.encode() in first.content

    replay = post(client, package, remote=ATTACKER)

    assert WIFI_KEY.encode() not in replay.content
    assert refused(replay)
    # The device itself, retransmitting with its certificate, still gets the same answer.
    assert post(client, package, cert).content == first.content


def test_last_digest_message_replayed_from_elsewhere_gets_no_cached_reply(client, chain, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 1
    device = digest_device(SECRET)
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    queue_wifi(device)
    first = sml.read(post(client, sml.package1(device.device_id, cred=cred(device, device.appsrv_nonce))).content)
    assert [c[2] for c in first.commands] == [REBOOT]
    second_message = sml.message(device.device_id, [sml.status(1, 1, 0, "SyncHdr", 200),
                                                    sml.status(2, 1, first.commands[0][1], "Exec", 200)],
                                 msg=2, cred=cred(device, first.chal_nonce))
    second = post(client, second_message)
    assert WIFI_KEY.encode() in second.content

    replay = post(client, second_message, remote=ATTACKER)

    assert WIFI_KEY.encode() not in replay.content
    assert refused(replay)
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.SUCCEEDED


# --- digest sessions: every message carries credentials for the latest nonce ------------------------

def test_unenroll_alert_injected_into_a_digest_session_without_credentials_is_not_acted_on(client, chain):
    device = digest_device(SECRET)
    commands.queue(device, "Exec", REBOOT, format="null")
    first = sml.read(post(client, sml.package1(device.device_id, cred=cred(device, device.appsrv_nonce))).content)
    assert first.header_status[4] in ("200", "212") and first.commands

    injected = post(client, sml.message(device.device_id, [sml.alert(2, 1201), UNENROLL], msg=2), remote=ATTACKER)

    assert refused(injected)
    device.refresh_from_db()
    assert device.status == Device.Status.ENROLLED and device.revoked_at is None
    assert not AuditEvent.objects.filter(action="device.unenrolled").exists()
    session = ManagementSession.objects.get(device=device)
    assert (session.client_msg_id, session.ended_at, session.events) == (1, None, [])


def test_earlier_digest_messages_replayed_into_their_session_are_refused_and_change_nothing(client, chain, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 1
    device = digest_device(SECRET)
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    wifi = queue_wifi(device)
    package = sml.package1(device.device_id, cred=cred(device, device.appsrv_nonce))
    first = sml.read(post(client, package).content)
    second_message = sml.message(device.device_id, [sml.status(1, 1, 0, "SyncHdr", 200),
                                                    sml.status(2, 1, first.commands[0][1], "Exec", 200)],
                                 msg=2, cred=cred(device, first.chal_nonce))
    second = sml.read(post(client, second_message).content)
    assert [c[2] for c in second.commands] == [WIFI]

    assert refused(post(client, package, remote=ATTACKER))
    assert refused(post(client, second_message, remote=ATTACKER))

    sessions = [(s.ended_at, s.client_msg_id) for s in ManagementSession.objects.filter(device=device)]
    assert sessions == [(None, 2)]
    wifi.refresh_from_db()
    assert wifi.status == DeviceCommand.Status.SENT
    # The device carries on with the nonce of the last reply it got: the replays changed nothing.
    third = sml.read(post(client, sml.message(device.device_id, [
        sml.status(1, 2, 0, "SyncHdr", 200), sml.status(2, 2, second.commands[0][1], "Replace", 200)],
        msg=3, cred=cred(device, second.chal_nonce))).content)
    assert third.header_status[4] == "200" and third.commands == []
    wifi.refresh_from_db()
    reboot.refresh_from_db()
    assert (reboot.status, wifi.status) == (DeviceCommand.Status.SUCCEEDED, DeviceCommand.Status.SUCCEEDED)


# --- certificate sessions: every message presents the device's certificate --------------------------

def test_message_injected_into_a_certificate_session_without_the_certificate_changes_nothing(client, pc):
    device, cert = pc
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    first = sml.read(post(client, sml.package1(device.device_id), cert).content)
    assert [c[2] for c in first.commands] == [REBOOT]

    injected = post(client, sml.message(device.device_id, [sml.alert(2, 1201), UNENROLL], msg=2), remote=ATTACKER)

    assert refused(injected)
    device.refresh_from_db()
    assert device.status == Device.Status.ENROLLED
    # The device's own next message is answered as if the injection never happened.
    reply = sml.read(post(client, sml.message(device.device_id, [
        sml.status(1, 1, 0, "SyncHdr", 200), sml.status(2, 1, first.commands[0][1], "Exec", 200)], msg=2), cert).content)
    assert reply.msg_id == "2" and reply.header_status[4] == "200"
    reboot.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.SUCCEEDED
    device.refresh_from_db()
    assert device.last_seen_at <= timezone.now()


def test_digest_device_that_lost_a_reply_is_challenged_then_carries_on_and_the_lost_command_is_queued_again(
        client, chain, settings):
    settings.ENROLLMENT_COMMANDS_PER_MESSAGE = 1
    device = digest_device(SECRET)
    reboot = commands.queue(device, "Exec", REBOOT, format="null")
    wifi = queue_wifi(device)
    first = sml.read(post(client, sml.package1(device.device_id, cred=cred(device, device.appsrv_nonce))).content)
    answers = [sml.status(1, 1, 0, "SyncHdr", 200), sml.status(2, 1, first.commands[0][1], "Exec", 200)]
    post(client, sml.message(device.device_id, answers, msg=2, cred=cred(device, first.chal_nonce)))  # reply lost

    # Its copy of message 2 carries a spent nonce: challenged with the nonce to use, and nothing else.
    again = sml.read(post(client, sml.message(device.device_id, answers, msg=2,
                                              cred=cred(device, first.chal_nonce))).content)
    assert again.header_status[4] == "401" and again.commands == []
    device.refresh_from_db()
    assert again.chal_nonce == device.appsrv_nonce
    resent = sml.read(post(client, sml.message(device.device_id, answers, msg=3,
                                               cred=cred(device, again.chal_nonce))).content)

    assert resent.header_status[4] == "200" and resent.commands == []  # the session ends here
    reboot.refresh_from_db()
    wifi.refresh_from_db()
    assert reboot.status == DeviceCommand.Status.SUCCEEDED
    assert (wifi.status, wifi.attempts) == (DeviceCommand.Status.QUEUED, 1)


# --- what an unauthenticated sender can make the server write ---------------------------------------

def test_messages_without_credentials_write_a_bounded_number_of_rows(client, chain):
    """Anyone who knows a DeviceID can send it messages without credentials; each one is challenged.
    The challenges must not grow the audit log or the sessions table with the number of messages:
    they are counted (one audit row per address, reason and minute) and a device keeps at most one
    session opened by a challenge."""
    device = digest_device(SECRET)
    sessions_before = ManagementSession.objects.count()

    for number in range(60):
        response = post(client, sml.package1(device.device_id, session=str(1000 + number)), remote=ATTACKER)
        assert refused(response)

    challenged = AuditEvent.objects.filter(action="management.challenged")
    assert challenged.count() <= 2  # a minute may turn during the loop
    assert sum(challenged.values_list("count", flat=True)) == 60
    assert ManagementSession.objects.count() - sessions_before <= 1


def test_the_device_still_signs_in_after_challenges_sent_by_someone_else(client, chain):
    device = digest_device(SECRET)
    for number in range(3):
        post(client, sml.package1(device.device_id, session=str(1000 + number)), remote=ATTACKER)
    device.refresh_from_db()

    reply = sml.read(post(client, sml.package1(device.device_id, session="7",
                                               cred=cred(device, device.appsrv_nonce))).content)

    assert reply.header_status[4] == "200"
    assert ManagementSession.objects.filter(device=device, session_id="7", messages=1).exists()


def test_a_copied_basic_credential_does_not_authenticate_a_message(client, chain):
    """syncml:auth-basic carries the secret itself: whoever has one such message could send any other
    message with it, for ever. The server provisions DIGEST (w7 APPLICATION APPSRV AAUTHTYPE), so a
    basic credential is answered with an md5 challenge and the message is not acted on."""
    import base64

    device = digest_device(SECRET)
    basic = ("syncml:auth-basic", base64.b64encode(f"{device.device_id}:{SECRET}".encode()).decode())
    commands.queue(device, "Exec", REBOOT, format="null")

    response = post(client, sml.message(device.device_id, [sml.alert(2, 1201), UNENROLL], cred=basic), remote=ATTACKER)

    assert refused(response)
    reply = sml.read(response.content)
    assert reply.chal_nonce  # an md5 challenge the device can answer
    device.refresh_from_db()
    assert device.status == Device.Status.ENROLLED and device.revoked_at is None
