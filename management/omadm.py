"""OMA-DM management sessions: POST /ManagementServer/MDM.svc (MS-MDM, OMA-DM 1.2; docs/omadm-sessions.md).

One request = one SyncML message from the device, one reply from us:

1. HTTP checks: XML SyncML only (WBXML → 415), body cap (413), well-formed SyncML (400).
2. Who is talking (`identify`), at every message: the client certificate nginx forwarded
   (enrollment/clientcert.py); without one, the OMA-DM digest made with the APPSRV secret of the
   enrollment (w7 APPLICATION CSP APPAUTH, `syncml:auth-md5` only: `syncml:auth-basic` carries the
   secret itself, so one copied message would authenticate any other). Without a certificate
   the transport authenticates no session, so each message carries its own credentials (OMA DM 1.2
   Security, "Authentication"): an accepted digest is answered 200, not 212 (which would let the
   client drop its credentials for the rest of the session), with a new NextNonce in the Chal of the
   SyncHdr Status, and the device's next message must be computed with that nonce (MS-MDM "OMA DM
   protocol support": after a 200 with a Chal, Windows sends a new digest made with the next nonce).
   A replayed message carries a spent nonce and fails. Refusals are HTTP 403 with an audit entry;
   digest failures are a SyncHdr 401/407 with a `Chal` (audited), and such a message is not acted
   on: no command of it runs, no session moves on, nothing of the device changes.
   SIGNIN_FAILURE_LIMIT wrong digests for one device from one address lock that pair out for
   SIGNIN_LOCKOUT_SECONDS (HTTP 429, audited once): a guesser is slowed down, while the device itself,
   talking from its own address, is not locked out by someone else's guesses.
3. The session (`Conversation`): a ManagementSession row per (device, SessionID) holds our MsgID
   counter, the device's last MsgID and our last reply, so a retransmitted message gets the same
   answer and a replayed MsgID gets a 400 without touching anything. Both are looked at only once
   the message has authenticated as that device, the same way as the message cached: a copy of a
   message's bytes from anyone else gets a challenge, never the device's reply. (A digest message's
   copy cannot authenticate again, its nonce being spent: a device that lost our reply is
   challenged and sends its message again with the nonce of the Chal; the commands of the lost
   reply go back to the queue when the session ends.) Reply rules (docs/omadm-sessions.md):
   SyncHdr Status first, a Status for every client command except Status/Results, then our queued
   commands (management/commands.py) in sequence order, then Final. A reply with no command ends the
   session. Statuses and Results are matched to our commands by (session, MsgRef, CmdRef).

Work per request is bounded: MAX_COMMANDS client commands per message (syncml.py),
ENROLLMENT_COMMANDS_PER_MESSAGE of ours per reply, ENROLLMENT_SESSION_MAX_MESSAGES per session,
and a fixed number of SQL statements per message (bulk reads and updates, never one per command),
written as explicit SQL in management/checkin_sql.py.
"""
import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.http import HttpResponse
from django.utils import timezone

from accounts.lockout import count_in_window
from accounts.models import AuditEvent
from pki import clientcert as forwarded_certificate
from enrollment import clientcert
from enrollment.models import Device

from . import checkin_sql, inventory, reconcile, syncml
from .commands import expire_overdue
from .models import DeviceCommand, ManagementSession

logger = logging.getLogger(__name__)

# Alert codes (OMA DM 1.2 RepPro; MS-MDM 2.2.7.2).
SERVER_INITIATED, CLIENT_INITIATED = "1200", "1201"
NEXT_MESSAGE, ABORT, CLIENT_EVENT, GENERIC_ALERT = "1222", "1223", "1224", "1226"
KNOWN_ALERTS = {SERVER_INITIATED, CLIENT_INITIATED, NEXT_MESSAGE, ABORT, CLIENT_EVENT, GENERIC_ALERT}
LOGIN_STATUS = "com.microsoft/MDM/LoginStatus"
LOGIN_VALUES = {"user", "others", "none"}
UNENROLL_REQUEST = "com.microsoft:mdm.unenrollment.userrequest"
AUTH_MD5 = "syncml:auth-md5"

# Status codes (OMA DM 1.2 RepPro, "Response Status Codes").
OK, BAD_REQUEST, INVALID_CREDENTIALS, NOT_SUPPORTED, MISSING_CREDENTIALS = 200, 400, 401, 406, 407

# An open session with no message for this long is over: its unanswered commands go back to queued.
SESSION_IDLE = timedelta(minutes=10)
MAX_EVENTS = 50
MAX_MSG_ID = 2**31 - 1
USER_SCOPE = "./User/"


class Refused(Exception):
    """Not a device we talk to: HTTP `http_status`, audited with `reason` (unless `audit` is False)."""

    def __init__(self, http_status, reason, device=None, audit=True):
        super().__init__(reason)
        self.http_status, self.reason, self.device, self.audit = http_status, reason, device, audit


@dataclass
class Caller:
    device: Device
    auth: str  # ManagementSession.Auth value, "" while a digest challenge is pending
    header_code: int = OK
    next_nonce: str = ""  # NextNonce for the SyncHdr Status Chal
    challenge_reason: str = ""
    nonce_renewed: bool = False  # device.appsrv_nonce was replaced: saved with the message

    @property
    def challenged(self):
        return self.header_code in (INVALID_CREDENTIALS, MISSING_CREDENTIALS)


def serve(request):
    """The view's whole job; never raises for bad input."""
    content_type = (request.content_type or "").lower()
    if content_type != syncml.CONTENT_TYPE:
        logger.info("management: refused Content-Type %r", content_type)
        # WBXML (application/vnd.syncml.dm+wbxml, OMA DM 1.2's binary encoding) is not supported:
        # Windows sends XML. 415 Unsupported Media Type with Accept naming the one we take (RFC 9110
        # 15.5.16), before any parsing, so a client that tried WBXML can fall back.
        response = _plain(415, f"Send SyncML as {syncml.CONTENT_TYPE} (WBXML is not supported).")
        response["Accept"] = syncml.CONTENT_TYPE
        return response
    cap = min(settings.ENROLLMENT_MAX_BODY_BYTES, syncml.MAX_BODY)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > cap:
        return _plain(413, "Message too large.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _plain(413, "Message too large.")
    if len(body) > cap:
        return _plain(413, "Message too large.")
    try:
        message = syncml.parse(body)
        _check_header(message.header)
    except syncml.SyncMLError as exc:
        logger.info("management: malformed SyncML from %s: %s", request.META.get("REMOTE_ADDR"), exc)
        return _plain(400, "Malformed SyncML message.")
    ip = request.META.get("REMOTE_ADDR") or None
    # One transaction per message, from the first query: the device's row is read FOR UPDATE, so the
    # messages of one device (and its reconciler) take turns, and nothing is ever half-written.
    with transaction.atomic():
        now = timezone.now()
        try:
            caller = identify(request, message, now)
        except Refused as refused:
            logger.warning("management: refused %s (Source %s): %s", ip, message.header.source[:64], refused.reason)
            if refused.audit:
                # No valid client certificate: counted per address and reason (AuditEvent.record_refusal).
                AuditEvent.record_refusal("management.refused", refused.device, ip=ip, reason=refused.reason, detail={
                    "reason": refused.reason, "source": message.header.source[:64], "http_status": refused.http_status})
            if refused.http_status == 429:
                return _plain(429, "Too many failed sign-ins from this address: try again later.")
            return _plain(refused.http_status, "This device is not allowed to talk to this server.")
        if caller.challenged:
            # Not authenticated (yet): counted per address and reason, like the other refusals.
            AuditEvent.record_refusal("management.challenged", caller.device, ip=ip, reason=caller.challenge_reason,
                                      detail={"reason": caller.challenge_reason, "status": caller.header_code})
        reply = Conversation(caller, message, body, server_url=request.build_absolute_uri(request.path), ip=ip,
                             now=now).run()
    response = HttpResponse(reply, content_type=syncml.CONTENT_TYPE)
    response["Content-Length"] = str(len(reply))
    return response


def _plain(status, text):
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(len(response.content))
    return response


def _check_header(header):
    if len(header.session_id) > 64 or not header.session_id.isprintable():
        raise syncml.SyncMLError("SessionID too long")
    if int(header.msg_id) > MAX_MSG_ID or int(header.msg_id) < 1:
        raise syncml.SyncMLError("MsgID out of range")
    if len(header.source) > 255:
        raise syncml.SyncMLError("Source too long")


# --- who is talking -------------------------------------------------------------------------------

def identify(request, message, now=None):
    """Caller for a device we manage; raises Refused. docs/omadm-sessions.md, rule 7. Call inside a
    transaction: the device's row is locked until it ends."""
    source = message.header.source
    now = now or timezone.now()
    cert = forwarded_certificate.certificate_from_request(request)
    if cert is not None:
        def find(serial):
            if message.header.msg_id == "1":
                return checkin_sql.device_by_serial(serial, flags=_first_message_flags(),
                                                    params=[now - SESSION_IDLE, now])
            return checkin_sql.device_by_serial(serial)

        try:
            device = clientcert.device_for_certificate(cert, find)
        except clientcert.ClientCertError as exc:
            raise Refused(403, exc.reason, exc.device) from None
        if source.lower() != device.device_id.lower():
            if Device.objects.enrolled().filter(device_id__iexact=source).exclude(pk=device.pk).exists():
                raise Refused(403, f"certificate of device {device.pk} used with the Source of another device", device)
            logger.warning("management: device %s sent SyncHdr Source %r, which names no device", device.pk, source[:64])
        return Caller(device, ManagementSession.Auth.CERTIFICATE)
    if message.header.msg_id == "1":
        device = checkin_sql.enrolled_device(source, flags=_first_message_flags(), params=[now - SESSION_IDLE, now])
    else:
        device = checkin_sql.enrolled_device(source)
    if device is None:
        raise Refused(403, "no client certificate and no enrolled device of that DeviceID")
    return _digest_caller(device, message.header, request.META.get("REMOTE_ADDR") or "")


@dataclass(frozen=True)
class SessionStartHook:
    """Once-per-session work of an app built on this one (Autopilot), which this app must not import:
    `pending(connection, device_id_column)` returns the SQL condition (an EXISTS of an index lookup on
    the device, no parameters) under which it has anything to do for a device, `started(device, now)`
    the work. `name` is the attribute the condition is read as, with the device."""
    name: str
    pending: object
    started: object

    def may_have_work(self, device):
        return _unless_row_says_no(device, self.name)


_session_starts = {}  # name -> SessionStartHook


def register_session_start(name, pending, started):
    """Run `started(device, now)` at the first message of each OMA-DM session of a device, after
    this app's own session-start work, when `pending` is true for it. `pending(connection,
    device_id_column)` returns an SQL boolean expression over the device's id column (an EXISTS of an
    index lookup, without parameters): it joins the device's read of that message
    (checkin_sql.device_by_serial), so a device with nothing to do costs no query and the message's
    statement count does not grow. Registered in an AppConfig.ready."""
    hook = SessionStartHook(name, pending, started)
    if name in _session_starts and _session_starts[name] != hook:
        raise ValueError(f"another session-start hook is registered as {name!r}")
    _session_starts[name] = hook


def _first_message_flags():
    """What the device's read at a session's first message also says, each as an attribute of the
    device: idle sessions to close, overdue commands to time out (parameters: the idle limit and now,
    in that order), and each registered hook's condition; so that a device with none of that work
    costs none of those queries."""
    return [
        checkin_sql.Flag(_HAS_IDLE_SESSIONS, checkin_sql.idle_sessions_sql),
        checkin_sql.Flag(_HAS_OVERDUE_COMMANDS, checkin_sql.overdue_commands_sql),
        *reconcile.CHECK_IN_FLAGS,
        *(checkin_sql.Flag(hook.name, hook.pending) for hook in _session_starts.values()),
    ]


# The flags of the device's read at a session's first message (_first_message_flags).
_HAS_IDLE_SESSIONS = "has_idle_sessions"
_HAS_OVERDUE_COMMANDS = "has_overdue_commands"


def _unless_row_says_no(device, annotation):
    """False only when the device was read with `annotation` (a session's first message, _first_message_flags)
    and it is false: nothing to do. True when the row was read without it: unknown, so look."""
    return getattr(device, annotation, True)


def may_have_idle_sessions(device):
    """Whether the device may have sessions left open past SESSION_IDLE to close."""
    return _unless_row_says_no(device, _HAS_IDLE_SESSIONS)


def may_have_overdue_commands(device):
    """Whether the device may have pending commands past their expiry to time out."""
    return _unless_row_says_no(device, _HAS_OVERDUE_COMMANDS)


def _digest_caller(device, header, ip):
    """Every message without a certificate proves itself with credentials for the device's current
    nonce; a session's earlier messages vouch for nothing (OMA DM 1.2 Security: when the transport
    authenticates no session, each request is authenticated)."""
    if digest_locked(device, ip):
        # Audited once, when the lockout started; not again at each refused attempt.
        raise Refused(429, "locked out after repeated wrong digests", device, audit=False)
    if not header.cred_data:
        return _challenge(device, MISSING_CREDENTIALS, "no client certificate and no credentials")
    if header.cred_type != AUTH_MD5:
        # We provision DIGEST (APPSRV AAUTHTYPE); a basic credential is the secret itself, valid for
        # ever, so it is never accepted: the md5 challenge tells the client what to send instead. No
        # secret was tested, so nothing counts towards the lockout.
        return _challenge(device, INVALID_CREDENTIALS, f"{header.cred_type or 'unknown'} credentials are not accepted")
    if not digest_matches(device, header):
        record_digest_failure(device, ip)
        return _challenge(device, INVALID_CREDENTIALS, f"wrong {header.cred_type or 'unknown'} credentials")
    # 200, not 212: authenticated for this message only, so the device sends credentials again, made
    # with the NextNonce of this reply (MS-MDM "OMA DM protocol support"). The nonce just used is
    # spent: a copy of this message will not authenticate again.
    return Caller(device, ManagementSession.Auth.DIGEST, OK, next_nonce=_new_nonce(device), nonce_renewed=True)


def digest_matches(device, header):
    """OMA-DM Security: md5 digest = b64(md5(b64(md5("name:secret")) + ":" + nonce)), with the device's
    current nonce. Device keeps only b64(md5("name:secret")) (see Device)."""
    if not device.appsrv_digest or header.cred_type != AUTH_MD5:
        return False
    try:
        nonce = base64.b64decode(device.appsrv_nonce, validate=True)
    except binascii.Error:
        return False
    expected = base64.b64encode(hashlib.md5(device.appsrv_digest.encode() + b":" + nonce).digest()).decode()
    return hmac.compare_digest(expected, header.cred_data)


def _failures_key(device, ip):
    return f"omadm:digest-failures:{device.pk}:{ip}"


def digest_locked(device, ip):
    return (cache.get(_failures_key(device, ip)) or 0) >= settings.AXES_FAILURE_LIMIT


def record_digest_failure(device, ip):
    """Count a wrong digest for (device, address) within SIGNIN_LOCKOUT_SECONDS; at the limit the pair is
    locked for SIGNIN_LOCKOUT_SECONDS from that failure."""
    key, window = _failures_key(device, ip), settings.SIGNIN_LOCKOUT_SECONDS
    failures = count_in_window(key, window)
    if failures == settings.AXES_FAILURE_LIMIT:
        cache.set(key, failures, window)
        logger.warning("management: device %s locked out for %s after %s wrong digests", device.pk, ip, failures)
        AuditEvent.record(None, "management.locked_out", device, ip=ip or None,
                          detail={"failures": failures, "seconds": window})


def _challenge(device, code, reason):
    """A Chal with the device's current nonce, left as it is. That nonce has never been accepted (each
    accepted message replaces it), so it is the one the device must use; and a request that proved
    nothing cannot change it, or anyone knowing a DeviceID could make a running session's next
    digest fail (OMA DM 1.2 Security, "Challenges from non-authenticated agents", gives the same
    advice to the side receiving a Chal)."""
    if _valid_nonce(device.appsrv_nonce):
        return Caller(device, "", code, next_nonce=device.appsrv_nonce, challenge_reason=reason)
    return Caller(device, "", code, next_nonce=_new_nonce(device), challenge_reason=reason, nonce_renewed=True)


def _valid_nonce(value):
    try:
        return bool(base64.b64decode(value, validate=True))
    except binascii.Error:
        return False


def _new_nonce(device):
    device.appsrv_nonce = base64.b64encode(secrets.token_bytes(16)).decode()
    return device.appsrv_nonce


# --- the session ----------------------------------------------------------------------------------

@dataclass
class Conversation:
    caller: Caller
    message: syncml.Message
    body: bytes
    server_url: str
    ip: str | None = None
    statuses: list = field(default_factory=list)
    device_fields: set = field(default_factory=set)
    inventory_values: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    ending: bool = False
    now: object = None
    # Commands of this session sent and not answered yet: None when not known (then the session's end
    # looks for them), 0 when the session has none (it was opened by this message, or every command
    # sent was answered).
    unanswered: int | None = None
    sent: list = field(default_factory=list)  # our commands in this reply, saved after the session's row
    # The queue as read with the session (open_session), for the reply; None when it must be read again
    # because something in this message may have changed it (a session closed, the session start's
    # work, the inventory) or the user's sign-in changed which commands it holds back.
    prefetched: list | None = None
    prefetched_for_user: bool = False
    answered: list = field(default_factory=list)  # our commands the device answered in this message
    waiting: list = field(default_factory=list)  # our commands sent in the session, not answered before

    @property
    def device(self):
        return self.caller.device

    @property
    def header(self):
        return self.message.header

    def run(self):
        self.now = self.now or timezone.now()
        digest = hashlib.sha256(self.body).hexdigest()
        if self.caller.nonce_renewed:
            self.device_fields.add("appsrv_nonce")
        # Inside serve()'s transaction (no savepoint); its own when called alone.
        with transaction.atomic(savepoint=False):
            if self.caller.challenged:
                return self.challenge(digest)
            session = self.open_session(digest)
            if isinstance(session, bytes):
                self.save_device()
                return session
            reply = self.converse(session)
            session.last_request_hash, session.last_reply, session.updated_at = digest, reply, self.now
            # One statement (checkin_sql): the session (inserted here when this message opened it, once,
            # with its final values), the commands of the reply, the answers and the device's row.
            checkin_sql.save_message(session, sent=self.sent, answered=self.answered, device=self.device,
                                     device_fields=self.device_fields)
        return reply

    def challenge(self, digest):
        """The reply to a message that did not authenticate: the SyncHdr Status with its Chal, nothing
        else. Not a command of it runs, and an open session of that SessionID is neither answered
        from its cache nor moved on (a copy of the device's message, or one slipped into its session,
        leaves it exactly as it was). A new session is recorded with our MsgID only, so that the
        device's next message, with credentials, gets the next one; it counts none of the device's
        messages (the first authenticated one starts the session's work), and any MsgID of the
        device carries it on. A device keeps one such session: a challenge under another SessionID
        takes it over, so that messages without credentials (anyone may send them) cannot grow the
        table."""
        session, _ = checkin_sql.open_session(self.device.pk, self.header.session_id)
        if session is not None:
            reply = self.reply(session, commands=[])  # the session is not saved
        else:
            session = (ManagementSession.objects.filter(device=self.device, ended_at__isnull=True, messages=0)
                       .order_by().first()
                       or ManagementSession(device=self.device, auth="", messages=0))
            session.session_id, session.server_msg_id, session.client_msg_id = self.header.session_id, 0, 0
            session.started_at = session.updated_at = self.now
            reply = self.reply(session, commands=[])
            session.last_request_hash, session.last_reply = digest, reply
            session.save()
        self.save_device()  # only a nonce that was missing or unreadable (_challenge)
        return reply

    def open_session(self, digest):
        """This message's ManagementSession, or the bytes to answer with (retransmission/duplicate).
        Only for a message that authenticated as self.device: the session is that device's, and its
        cached reply goes to a copy of the message only when the copy authenticated the same way as
        the original (a reply to a challenge is never replayed to the device)."""
        msg_id = int(self.header.msg_id)
        # With the commands sent in it and not answered yet (apply_answers), and the device's next
        # commands (next_commands), in one statement.
        self.prefetched_for_user = self.device.login_status == "user"
        session, self.waiting, self.prefetched = checkin_sql.open_session_and_queue(
            self.device.pk, self.header.session_id, digest, checkin_sql.QueueRead(
                self.now, settings.ENROLLMENT_COMMANDS_PER_MESSAGE, self.prefetched_for_user, USER_SCOPE))
        if session is not None and msg_id <= session.client_msg_id:
            if (msg_id == session.client_msg_id and digest == session.last_request_hash
                    and session.auth == self.caller.auth):
                logger.info("management: device %s retransmitted message %s; same answer", self.device.pk, msg_id)
                return bytes(session.last_reply)
            if msg_id != 1:
                logger.warning("management: device %s reused MsgID %s in session %s", self.device.pk, msg_id, session.pk)
                return self.refuse_duplicate(session)
            self.close(session)  # the device started over with the same SessionID
            session = None
        if session is not None and session.messages == 0:
            self.unanswered = 0  # opened by a challenge: nothing was sent in it
        if session is None:
            if may_have_idle_sessions(self.device):
                self.close_idle_sessions()
            # Saved at the end of the message (run), with its reply.
            session = ManagementSession(device=self.device, session_id=self.header.session_id, auth=self.caller.auth,
                                        started_at=self.now, updated_at=self.now)
            self.unanswered = 0
        session.client_msg_id = msg_id
        session.messages += 1
        if self.caller.auth:
            session.auth = self.caller.auth
        return session

    def refuse_duplicate(self, session):
        """SyncHdr 400, no commands; nothing is recorded, so the session carries on untouched."""
        status = syncml.Status(self.header.msg_id, "0", "SyncHdr", BAD_REQUEST)
        reply, _ = syncml.build(request_header=self.header, msg_id=session.server_msg_id + 1,
                                server_url=self.server_url, statuses=[status])
        return reply

    def close(self, session):
        self.prefetched = None  # its unanswered commands go back to the queue
        session.ended_at = self.now
        session.save(update_fields=["ended_at"])
        requeue_unanswered(DeviceCommand.objects.filter(session=session), self.now)

    def close_idle_sessions(self):
        idle = ManagementSession.objects.filter(device=self.device, ended_at__isnull=True,
                                                updated_at__lt=self.now - SESSION_IDLE)
        if idle.update(ended_at=self.now):
            self.prefetched = None
            requeue_unanswered(DeviceCommand.objects.filter(device=self.device, session__ended_at__isnull=False),
                               self.now)

    def converse(self, session):
        self.apply_answers(session)
        for command in self.message.commands:
            if command.name not in ("Status", "Results"):
                self.answer(command)
        if self.inventory_values:
            new_values = inventory.new_values(self.device, self.inventory_values)
            self.device_fields.update(inventory.apply(self.device, self.inventory_values, self.now))
            if new_values and self.device.status == Device.Status.ENROLLED:
                # Read for the first time (the first session's, as a rule): an app recognising the device
                # by them queues what it sends, in time for this message's reply.
                inventory.notify(self.device, new_values, self.now)
                self.prefetched = None
        self.device.last_seen_at = self.now
        self.device_fields.add("last_seen_at")
        session.events = (session.events + self.events)[:MAX_EVENTS]
        if not self.message.final:
            # The device has more to send in this package: ask for it, send nothing yet.
            return self.reply(session, commands=[], alerts=[NEXT_MESSAGE])
        if self.ending or self.device.status != Device.Status.ENROLLED:
            outgoing = []
        elif session.messages > settings.ENROLLMENT_SESSION_MAX_MESSAGES:
            logger.warning("management: session %s reached %s messages; ending it", session.pk, session.messages)
            outgoing = []
        else:
            outgoing = self.next_commands(session_start=session.messages == 1)
        reply = self.reply(session, commands=outgoing)
        if not outgoing:
            # A Status-only reply ends the session (docs/omadm-sessions.md, rule 6).
            session.ended_at = self.now
            if self.unanswered != 0:
                # Those answered in this message are saved with the message (run), after this.
                requeue_unanswered(DeviceCommand.objects.filter(session=session).exclude(
                    pk__in=[command.pk for command in self.answered]), self.now)
        return reply

    def reply(self, session, *, commands, alerts=()):
        session.server_msg_id += 1
        header_status = syncml.Status(self.header.msg_id, "0", "SyncHdr", self.caller.header_code,
                                      chal_nonce=self.caller.next_nonce)
        reply, sent = syncml.build(request_header=self.header, msg_id=session.server_msg_id,
                                   server_url=self.server_url, statuses=[header_status, *self.statuses],
                                   commands=commands, alerts=alerts, final=not alerts)
        for cmd_id, command in sent.items():
            command.status, command.session, command.msg_id = DeviceCommand.Status.SENT, session, session.server_msg_id
            command.cmd_id, command.sent_at, command.attempts = int(cmd_id), self.now, command.attempts + 1
            self.sent.append(command)  # saved by run() once the session has its row
        return reply

    # -- the device's Statuses and Results for our commands (omadm-sessions.md rule 5) -------------------

    def apply_answers(self, session):
        answers = [c for c in self.message.commands if c.name in ("Status", "Results")]
        refs = {ref for ref in (_ref(c) for c in answers) if ref is not None}
        if not refs:
            return
        # Every command of the session still waiting for an answer (those of the previous reply, as a
        # rule; at most ENROLLMENT_COMMANDS_PER_MESSAGE per message): what is left unanswered below tells
        # whether the session's end has commands to put back in the queue. A session opened by this
        # message has sent nothing yet.
        candidates = [] if session.pk is None else self.waiting
        by_ref = {(c.msg_id, c.cmd_id): c for c in candidates}
        touched = {}
        for answer in answers:
            ref = _ref(answer)
            command = by_ref.get(ref) if ref else None
            if command is None:
                if answer.cmd_ref != "0":
                    # docs/omadm-sessions.md rule 3: some clients acknowledge things we never sent; never an error.
                    logger.info("management: device %s sent a %s for MsgRef %s CmdRef %s, which we never sent",
                                self.device.pk, answer.name, answer.msg_ref[:16], answer.cmd_ref[:16])
                continue
            if answer.name == "Status":
                _close(command, answer.data, self.now)
            else:
                self.store_result(command, answer)
            touched[command.pk] = command
        self.unanswered = len(by_ref) - len(touched)
        self.answered = list(touched.values())  # saved with the message (run)

    def store_result(self, command, results):
        item = results.items[0] if results.items else syncml.Item()
        if len(item.data.encode()) > settings.ENROLLMENT_MAX_RESULT_BYTES:
            command.result_data, command.result_format = "", item.format[:16]
            command.note = f"Result of {len(item.data.encode())} bytes not kept (limit {settings.ENROLLMENT_MAX_RESULT_BYTES})"
            logger.warning("management: device %s sent an oversized result for command %s", self.device.pk, command.pk)
            return
        command.result_data, command.result_format = item.data, item.format[:16]
        if command.source == inventory.SOURCE:
            self.inventory_values[command.target] = item.data

    # -- the device's own commands (omadm-sessions.md rules 2-3) -----------------------------------------

    def answer(self, command):
        code = self.handle(command) if command.cmd_id else BAD_REQUEST
        self.statuses.append(syncml.Status(self.header.msg_id, command.cmd_id[:16], command.name[:32], code))
        for child in command.children:
            self.answer(child)

    def handle(self, command):
        if command.name == "Alert":
            return self.alert(command)
        if command.name == "Replace":
            # Package 1 reports ./DevInfo nodes unasked: the same inventory fields.
            for item in command.items:
                if item.source:
                    self.inventory_values[item.source] = item.data
            return OK
        if command.name in ("Atomic", "Sequence"):
            return OK
        if command.name in syncml.CLIENT_COMMANDS:
            return NOT_SUPPORTED  # a Get/Add/Delete/Exec aimed at the server
        logger.info("management: device %s sent an unknown command <%s>", self.device.pk, command.name[:32])
        return BAD_REQUEST

    def alert(self, command):
        code = command.data
        if code not in KNOWN_ALERTS:
            self.record(code, "", command.data)
            return NOT_SUPPORTED
        if code == ABORT:
            self.record(code, "", "")
            self.ending = True
        elif code == CLIENT_EVENT:
            for item in command.items or [syncml.Item()]:
                self.client_event(item.type or command.meta_type, item.data)
        elif code == GENERIC_ALERT:
            for item in command.items:
                self.generic_alert(item)
        return OK

    def client_event(self, event_type, data):
        if event_type == LOGIN_STATUS and data in LOGIN_VALUES:
            if self.device.login_status != data:
                self.device.login_status = data
                self.device_fields.add("login_status")
            return
        self.record(CLIENT_EVENT, event_type, data)

    def generic_alert(self, item):
        """MS-MDM: 1226 carries async CSP results and the user's unenrollment."""
        self.record(GENERIC_ALERT, item.type, item.data, item.source)
        if item.type != UNENROLL_REQUEST:
            return
        self.ending = True
        if self.device.status != Device.Status.ENROLLED:
            return
        self.device.mark_unenrolled()
        logger.info("management: device %s unenrolled by its user", self.device.pk)
        AuditEvent.record(None, "device.unenrolled", self.device, ip=self.ip, detail={
            "by": "user on the device", "alert": GENERIC_ALERT, "certificate": self.device.certificate_serial})

    def record(self, alert, event_type, data, source=""):
        if len(self.events) < MAX_EVENTS:
            self.events.append({"alert": alert[:8], "type": event_type[:200], "data": data[:500],
                                "source": source[:200], "at": self.now.isoformat()})

    # -- our commands ------------------------------------------------------------------------------

    def next_commands(self, *, session_start):
        if session_start:
            # Once per session keeps the per-message queries fixed: overdue commands are timed out
            # (the queue read below skips expired ones anyway, and the beat task sweeps the rest), and
            # groups the device joined by rule since its last session (new name, OS version) send
            # their settings in this one.
            # Each is skipped when the device's row said it has nothing to do (_devices).
            overdue = may_have_overdue_commands(self.device)
            if overdue:
                expire_overdue(self.device, self.now)
                self.prefetched = None
            # Only when something may have changed since the device's last reconciliation (its row says
            # so), or a setting's command just timed out above. The device is locked and current
            # (identify): the reconciler need not read it again.
            if overdue or reconcile.may_be_needed(self.device):
                reconcile.checked_in(self.device, locked=True)
                self.prefetched = None
            # The registered apps' work (Autopilot: app installs and the Enrollment Status Page move
            # on, DMClient CSP FirstSyncStatus), each only when the device's row says it has some.
            for hook in _session_starts.values():
                if hook.may_have_work(self.device):
                    hook.started(self.device, self.now)
                    self.prefetched = None
        first = []
        if inventory.due(self.device, self.now):
            gets = DeviceCommand.objects.bulk_create(inventory.gets(self.device, self.now))
            # At the device's first inventory, the nodes an app recognises the device by (Autopilot: its
            # serial number and hardware hash) go first, ahead of what was queued before.
            first = inventory.first_reads(self.device, gets)
            self.device.inventory_requested_at = self.now
            self.device_fields.add("inventory_requested_at")
            self.prefetched = None
        # Commands under ./User/ are held until a user is signed in (LoginStatus).
        limit = settings.ENROLLMENT_COMMANDS_PER_MESSAGE
        user_signed_in = self.device.login_status == "user"
        if self.prefetched is not None and user_signed_in == self.prefetched_for_user:
            # Read with the session, after the device's lock, and nothing of this message touched it since.
            queued = self.prefetched
        else:
            queued = checkin_sql.queued(self.device.pk, self.now, limit=limit, user_signed_in=user_signed_in,
                                        user_scope=USER_SCOPE)
        if not first:
            return queued
        firsts = {command.pk for command in first}
        return (first + [command for command in queued if command.pk not in firsts])[:limit]

    def save_device(self):
        if self.device_fields:
            self.device.save(update_fields=sorted(self.device_fields))


def _ref(answer):
    if not (answer.msg_ref.isdigit() and answer.cmd_ref.isdigit()):
        return None
    if len(answer.msg_ref) > 9 or len(answer.cmd_ref) > 9:
        return None
    return int(answer.msg_ref), int(answer.cmd_ref)


def _close(command, data, now):
    code = int(data) if data.isdigit() and len(data) < 5 else None
    succeeded = code is not None and 200 <= code < 300 and code not in (214, 215, 216)
    command.status = DeviceCommand.Status.SUCCEEDED if succeeded else DeviceCommand.Status.FAILED
    command.status_code, command.completed_at = code, now


def requeue_unanswered(commands, now):
    """Commands sent but never answered go back to the queue, up to ENROLLMENT_COMMAND_MAX_ATTEMPTS
    sends in all; then they fail. Never touches an acknowledged command."""
    limit = settings.ENROLLMENT_COMMAND_MAX_ATTEMPTS
    given_up = Q(attempts__gte=limit)
    # One UPDATE for both outcomes: this runs at the end of every session.
    commands.filter(status=DeviceCommand.Status.SENT).update(
        status=Case(When(given_up, then=Value(DeviceCommand.Status.FAILED)), default=Value(DeviceCommand.Status.QUEUED)),
        completed_at=Case(When(given_up, then=Value(now)), default=F("completed_at")),
        note=Case(When(given_up, then=Value(f"No answer from the device after {limit} sends")), default=F("note")),
    )
