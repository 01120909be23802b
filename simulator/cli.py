"""The simulator's command line: `python -m simulator SERVER …` (a client: no server code, no settings,
no secrets needed), and the same options behind the server's `manage.py simulate_device`."""
import argparse
import getpass
import json
import sys

from .device import Simulator
from .errors import SimulatorError, SoapFaultError
from .certificates import thumbprint
from .transport import parse_resolve

DESCRIPTION = (
    "Enroll a simulated Windows 10/11 PC (or HoloLens 2) against a running mdmportal server over "
    "real HTTP, as Settings > Access work or school does: discovery probe, Discover, the federated "
    "sign-in or on-premise password (or, with --pin, a provisioning package's service UPN and PIN), "
    "GetPolicies and RequestSecurityToken. Every answer is checked "
    "(SOAP headers, certificate chain, provisioning document) and the first failed check is "
    "reported with a non-zero exit. SERVER is a host name, https://host, or the full URL ending in "
    "Discovery.svc. Windows itself only enrolls over https with a certificate it already trusts; "
    "http:// is accepted here for local test servers only. With --entra-token it enrolls as an Entra "
    "ID device or work account instead (see Microsoft's \"Microsoft Entra integration with MDM\"): "
    "no password, the token in GetPolicies and RST, "
    "and with --entra-terms-url the terms-of-use page first."
)


class UsageError(Exception):
    """Options that do not go together, or a value that cannot be read (exit status 2)."""


class RunFailed(Exception):
    """A check of the server's answers failed (exit status 1)."""


def add_arguments(parser):
    parser.add_argument("server", help="host, https://host or https://host/EnrollmentServer/…/Discovery.svc")
    parser.add_argument("--email", help="the user's email (UPN) typed into Windows, or with --pin the package's "
                                         "service UPN; with --entra-token, the token's upn by default")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="the password or PIN; asked for when omitted on a terminal")
    secret.add_argument("--pin", help="enroll as a provisioning package (PPKG) does, in the background with the "
                                      "service UPN of --email and this PIN of a PIN enrollment (OnPremise, Full)")
    secret.add_argument("--entra-token", help="an Entra ID access token (JWT) to enroll with instead of a password")
    parser.add_argument("--entra-terms-url", help="with --entra-token: accept the terms of use at this URL first "
                                                  "and send its OpaqueBlob as EnrollmentData")
    parser.add_argument("--entra-enrollment-data", choices=["blob", "null", "empty", "absent"],
                        help="with --entra-token: what the RST carries as the EnrollmentData context item: the "
                             "terms-of-use OpaqueBlob (blob, needs --entra-terms-url; the default with it), or, "
                             "as Windows does when no blob came back, the literal string null, an empty value, "
                             "or no item (absent, the default without --entra-terms-url)")
    parser.add_argument("--registration-pin",
                        help="the user's registration PIN, when the sign-in page asks for one (with --federated)")
    parser.add_argument("--federated", action="store_true",
                        help="expect the Federated policy and sign in through the server's sign-in page")
    parser.add_argument("--follow-auth-policy", action="store_true",
                        help="as Windows' Settings does: offer OnPremise and Federated and take whichever the "
                             "server answers (its sign-in page for Federated, this password for OnPremise) "
                             "instead of insisting on the one --federated names; the result reports which")
    parser.add_argument("--hololens", action="store_true", help="present as a HoloLens 2 (OSEdition 136)")
    parser.add_argument("--device-enrollment", action="store_true",
                        help="EnrollmentType Device: certificate in My/System instead of My/User")
    parser.add_argument("--device-id", help="32 hex digits; random when omitted")
    parser.add_argument("--csr-hash", choices=["sha1", "sha256"], default="sha1",
                        help="CSR signature hash; Windows devices send SHA-1 with the old OID (default)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    tls.add_argument("--ca-file", help="PEM file of the CA that signed the server's TLS certificate")
    parser.add_argument("--resolve", action="append", default=[], metavar="HOST:PORT:ADDRESS",
                        help="as curl's --resolve: connect to ADDRESS for HOST:PORT while still using HOST for "
                             "the Host header, TLS SNI and the certificate check, e.g. to test a server before "
                             "its DNS name exists (repeatable)")
    parser.add_argument("--client-cert-header", action="store_true",
                        help="send the device certificate (--renew, --checkin) in the X-SSL-Client-Cert header "
                             "nginx would forward instead of in the TLS handshake, for a server without nginx in "
                             "front (it believes the header from TRUSTED_PROXIES only); always so over http://. "
                             "Through nginx this header is overwritten, so the device is not recognised")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per HTTP request (default 30)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result (for benchmarks)")
    parser.add_argument("--renew", action="store_true",
                        help="after enrolling, renew the certificate as Windows' ROBO renewal does: a new key "
                             "and CSR in a PKCS#7 signed by the current key, with the current certificate as "
                             "client certificate (see --client-cert-header). The server "
                             "renews only inside its window (ENROLLMENT_RENEW_PERIOD_DAYS before expiry), so a "
                             "fresh certificate is refused with NotEligibleToRenew unless the window is wider. "
                             "With --checkin, the session then uses the new certificate")
    parser.add_argument("--checkin", action="store_true",
                        help="after enrolling, run one OMA-DM session: package 1, answer every command "
                             "(Results from a small fake DevInfo/DevDetail tree) until the server ends it")
    parser.add_argument("--digest", action="store_true",
                        help="with --checkin: authenticate with the APPSRV digest instead of the client "
                             "certificate")
    parser.add_argument("--serial", help="the SMBIOS serial number the PC reports when the server reads "
                                         "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber (random when omitted); "
                                         "as on Windows, it is not sent with the enrollment request")
    parser.add_argument("--hardware-hash", help="the base64 hardware hash (an Autopilot CSV's Hardware Hash) the "
                                                "PC reports when the server reads ./DevDetail/Ext/DeviceHardwareData; "
                                                "not sent with the enrollment request either")
    parser.add_argument("--stall-msi", nargs="?", const="once", choices=["once", "always"],
                        help="at check-ins, an MSI app's DownloadInstall parks, as seen in the field: its "
                             "EnterpriseDesktopAppManagement Status stays at 50 (enforcement in progress). "
                             "once (the default): the first install of each product parks and one sent again "
                             "completes; always: every install parks")
    parser.add_argument("--unenroll", action="store_true",
                        help="with --checkin: send the 1226 alert of a user removing the work account")
    parser.add_argument("--context-item", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra AdditionalContext item of the enrollment request (repeatable), e.g. "
                             "an Autopilot device's OfflineAutoPilotEnrollmentCorrelator=<profile's "
                             "ZtdCorrelationId>")
    parser.add_argument("--sessions", type=int, default=None, metavar="K",
                        help="with --checkin: run K OMA-DM sessions one after the other, as a device checking "
                             "in again (default 1; with --user-context-after N, N+4: enough for the account "
                             "setup to finish once the user's context exists)")
    parser.add_argument("--user-context-after", type=int, default=0, metavar="N",
                        help="with --checkin: the device answers 405 (Command not allowed) to every ./User/ "
                             "command in its first N sessions, as Windows does during the account setup of "
                             "OOBE until the signed-in user's MDM context exists; then it carries them out")
    parser.add_argument("--second-user", action="store_true",
                        help="with --checkin: after the sessions, another person signs in for the first time "
                             "(one more session): the run fails unless the server set DMClient "
                             "FirstSyncStatus/SkipUserStatusPage, without which Windows shows that user the "
                             "account-setup page until its time-out")
    parser.add_argument("--pause-before-renew", action="store_true",
                        help="with --renew: after enrolling, wait for Enter before renewing, e.g. while an "
                             "administrator regenerates the enrollment URL (Organisation > Regenerate enrollment "
                             "URL); the renewal still goes to the URL the device enrolled through, as Windows' does")
    parser.add_argument("--clock-skew-hours", type=float, default=0, metavar="HOURS",
                        help="the device's clock is this many hours off the real time (negative: behind); the "
                             "certificates the server issues are checked against it, as Windows does")
    parser.add_argument("--retry-rst", action="store_true",
                        help="send the RequestSecurityToken, drop the answer as if the connection had failed, and "
                             "send the very same message again (the server answers it again without a second "
                             "device and without spending a single-use credential twice)")
    parser.add_argument("--wbxml", action="store_true",
                        help="with --checkin: send each session's first message as WBXML "
                             "(application/vnd.syncml.dm+wbxml), expect 415 naming XML in Accept, then fall "
                             "back to XML")


class Run:
    """One run of the simulator: writes its report to stdout (the --json result or a summary)."""

    def __init__(self, stdout=None, stderr=None, stdin=None, success=None):
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.stdin = stdin
        # How a success line is shown (manage.py colours it); plain text otherwise.
        self.success_style = success or (lambda text: text)

    def _out(self, text):
        self.stdout.write(text + "\n")

    def _err(self, text):
        self.stderr.write(text + "\n")

    def _success(self, text):
        self._out(self.success_style(text))

    def run(self, *, server, email, password, pin, federated, hololens, device_enrollment, device_id,
               csr_hash, insecure, ca_file, timeout, renew, checkin, digest, unenroll, registration_pin,
               entra_token, entra_terms_url, resolve, client_cert_header, entra_enrollment_data, follow_auth_policy,
               stall_msi, pause_before_renew, clock_skew_hours, retry_rst, wbxml, serial=None, hardware_hash=None,
               **options):
        as_json = options["json"]
        if pause_before_renew and not renew:
            raise UsageError("--pause-before-renew goes with --renew")
        if wbxml and not checkin:
            raise UsageError("--wbxml goes with --checkin")
        stdin = self.stdin or sys.stdin
        try:
            resolve = dict(parse_resolve(value) for value in resolve)
        except ValueError as exc:
            raise UsageError(f"--resolve: {exc}") from None
        context_items = []
        for item in options["context_item"]:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise UsageError(f"--context-item {item!r}: write NAME=VALUE")
            context_items.append((name.strip(), value))
        if pin is not None and (federated or hololens or device_enrollment):
            raise UsageError("--pin enrolls a PC as a provisioning package does: on-premise, user (Full) enrollment; "
                               "it does not go with --federated, --hololens or --device-enrollment")
        sessions, user_context_after, second_user = (options["sessions"], options["user_context_after"],
                                                     options["second_user"])
        if (digest or unenroll or sessions is not None or user_context_after or second_user) and not checkin:
            raise UsageError("--digest, --unenroll, --sessions, --user-context-after and --second-user go with "
                               "--checkin")
        if user_context_after < 0 or (sessions is not None and not 1 <= sessions <= 100):
            raise UsageError("--user-context-after takes 0 or more sessions, --sessions 1 to 100")
        if sessions is None:
            sessions = user_context_after + 4 if user_context_after else 1
        if entra_terms_url and not entra_token:
            raise UsageError("--entra-terms-url needs --entra-token")
        if entra_enrollment_data and not entra_token:
            raise UsageError("--entra-enrollment-data needs --entra-token")
        if entra_enrollment_data and (entra_enrollment_data == "blob") != bool(entra_terms_url):
            raise UsageError("--entra-enrollment-data blob needs --entra-terms-url; null, empty and absent go "
                               "without it")
        if follow_auth_policy and (pin is not None or entra_token or federated):
            raise UsageError("--follow-auth-policy goes with a password sign-in, not with --pin, --entra-token "
                               "or --federated")
        if not entra_token and not email:
            raise UsageError("--email is required (or --entra-token)")
        if pin is not None:
            password = pin
        elif password is None and not entra_token:
            if not sys.stdin.isatty():
                raise UsageError("--password is required when not run from a terminal")
            password = getpass.getpass(f"Password for {email}: ")
        try:
            simulator = Simulator(
                server, email, password, federated=federated, hololens=hololens,
                device_enrollment=device_enrollment, device_id=device_id, verify_tls=not insecure,
                ca_file=ca_file, csr_hash=csr_hash, timeout=timeout, provisioning_package=pin is not None,
                pin=registration_pin, entra_token=entra_token, terms_url=entra_terms_url, resolve=resolve,
                client_cert_header=client_cert_header, entra_enrollment_data=entra_enrollment_data,
                follow_auth_policy=follow_auth_policy, serial_number=serial, hardware_hash=hardware_hash,
                user_context_after=user_context_after, second_user_at=sessions + 1 if second_user else None,
                context_items=context_items,
                msi_stall=stall_msi, clock_skew_hours=clock_skew_hours, retry_rst=retry_rst,
                wbxml=wbxml, before_renew=(lambda: self._pause(stdin)) if pause_before_renew else None,
            )
            result = simulator.run()
        except SimulatorError as exc:
            if as_json:
                self._out(_dumps(_failure(exc)))
            raise RunFailed(f"enrollment failed at {exc}") from None
        data = result.as_dict()
        renewal = None
        done = []
        if renew:
            try:
                renewal = simulator.renew(result)
            except SimulatorError as exc:
                if as_json:
                    self._out(_dumps({**data, "renewal": _failure(exc)}))
                raise RunFailed(f"renewal failed at {exc}") from None
            data["renewal"] = renewal.as_dict()
        if checkin:
            enrolled = renewal.enrollment if renewal else result
            try:
                # The unenrollment alert goes with the last session; a later user signs in after them all.
                for number in range(1, sessions + (2 if second_user else 1)):
                    done.append(simulator.checkin(enrolled, digest=digest, unenroll=unenroll and number == sessions))
            except SimulatorError as exc:
                if as_json:
                    self._out(_dumps({**data, **_sessions(done), "checkin": _failure(exc)}))
                raise RunFailed(f"check-in failed at {exc}") from None
            data.update(_sessions(done))
            if second_user:
                data["second_user"] = {"account_setup_page": simulator.second_user_page}
        if as_json:
            self._out(_dumps(data))
            return
        self._summary(result)
        if renewal is not None:
            self._renewal_summary(renewal)
        for session in done:
            self._checkin_summary(session)
        if second_user:
            self._success(("A later user signed in for the first time and skipped the "
                                                 "account-setup page (SkipUserStatusPage is set)."))

    def _pause(self, stdin):
        # On stderr: stdout may be the --json result.
        self._err("Enrolled. Press Enter to renew the certificate (regenerate the enrollment URL first to "
                          "see a renewal across a rotation).")
        stdin.readline()

    def _renewal_summary(self, renewal):
        cert = renewal.certificate
        self._out(f"Certificate renewed in {renewal.seconds * 1000:.1f} ms:")
        for label, value in [
            ("Old serial", format(renewal.previous.serial_number, "X")),
            ("New serial", format(cert.serial_number, "X")),
            ("Thumbprint", thumbprint(cert)),
            ("Subject", cert.subject.rfc4514_string()),
            ("Expires", cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ]:
            self._out(f"  {label + ':':<14} {value}")
        self._success(("Renewal succeeded: new key, same subject, chained to the enrollment's root."))

    def _checkin_summary(self, session):
        self._out(f"OMA-DM session {session.session_id} ({session.auth}):")
        for message in session.messages:
            self._out(f"  {message.describe()}")
            for (verb, cmd_id, target, fmt, data), answer in zip(message.commands, message.answers):
                shown = f" = {data[:40]!r}" if data else ""
                self._out(f"    {cmd_id:>3} {verb} {target}{shown} -> {answer}")
        self._success((f"Session ended after {len(session.messages)} server message(s); "
                                             "MsgID/MsgRef/CmdRef bookkeeping checked."))

    def _summary(self, result):
        cert = result.certificate
        self._out(f"Simulated {result.kind} enrollment against {result.discovery_url}")
        for step in result.steps:
            self._out(f"  {step.name:<10} {step.seconds * 1000:7.1f} ms  {step.detail}")
        rows = [
            ("Auth policy", result.discovery.auth_policy),
            ("Enrollment type", result.enrollment_type),
            ("Device ID", result.device_id),
            ("Device name", result.device_name),
            ("Certificate", cert.subject.rfc4514_string()),
            ("Issuer", cert.issuer.rfc4514_string()),
            ("Serial", format(cert.serial_number, "X")),
            ("Thumbprint", thumbprint(cert)),
            ("Expires", cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("Management URL", result.provisioning.management_url),
            ("Provider ID", result.provisioning.provider_id),
            ("Total time", f"{result.total_seconds:.3f} s"),
        ]
        for label, value in rows:
            self._out(f"{label + ':':<16} {value}")
        self._success(("Enrollment succeeded; every answer passed the checks."))


def _sessions(done):
    """"checkin": the last session (the first one's place when there is one); "checkins": every one."""
    if not done:
        return {}
    return {"checkin": done[-1].as_dict(), **({"checkins": [session.as_dict() for session in done]}
                                              if len(done) > 1 else {})}


def _failure(exc):
    failure = {"ok": False, "check": exc.check, "error": exc.message}
    if isinstance(exc, SoapFaultError):
        failure.update(code=exc.code, subcode=exc.subcode, reason=exc.reason, error_type=exc.error_type)
    return failure


def _dumps(data):
    return json.dumps(data, indent=2)


def main(argv=None):
    """`python -m simulator`: 0 when every check passed, 1 when one failed, 2 for a usage error."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=DESCRIPTION)
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        Run().run(**options)
    except UsageError as exc:
        parser.error(str(exc))
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
