"""One simulated Windows device: the enrollment it runs step by step (probe, Discover, sign-in or
terms page, GetPolicies, key, RequestSecurityToken), its renewal, its check-ins, and the switches that
make it behave as devices were seen to in the field."""
import base64
import http.cookiejar
import os
import secrets
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from lxml.builder import ElementMaker

from .certificates import build_windows_csr, signed_renewal_request, thumbprint
from .errors import SimulatorError
from .omadm import MSI_PARKED_STATUS, ManagementClient
from .provisioning import validate_provisioning_document, validate_renewal_document
from .results import EnrollmentResult, RenewalResult, Step
from .signin import (accept_form, fill_sign_in_form, form_post_headers, jwt_claims, read_auto_post, read_terms_answer,
                     sign_in_url, terms_page_url)
from .soap import (A, AC_NS, ANONYMOUS, BASE64_BINARY, DISCOVERY_NS, DISCOVER_ACTION, GET_POLICIES_ACTION,
                   HOLOLENS_VERSION, ISSUE, JWT_TOKEN, OSEDITION_HOLOLENS, OSEDITION_PRO, PASSWORD_TEXT, PC_VERSION,
                   PKCS10, PKCS7, RENEW, REQUEST_VERSION, RST_ACTION, S, SOAP12_NS, SOAP_CONTENT_TYPE, TOKEN_TYPE,
                   USER_TOKEN, WSSE, WSSE_NS, WST_NS, WSU_NS, XCEP_NS, XSD_NS, XSI_NS, discovery_url, new_message_id,
                   parse_discover_response, parse_enrollment_response, parse_policies_response, parse_xml)
from .transport import (CLIENT_CERT_HEADER, MAX_RESPONSE_BYTES, _page_text, _RefuseRedirects, _ssl_context,
                        build_opener, client_certificate_header, shared_ssl_context, soap_opener)

# What the EnrollmentData context item of an Entra RST may carry (see Simulator).
ENROLLMENT_DATA_CHOICES = ("blob", "null", "empty", "absent")


def _random_mac():
    # Locally administered, unicast: never a real vendor's address.
    octets = [secrets.randbelow(256) for _ in range(6)]
    octets[0] = (octets[0] | 0x02) & 0xFE
    return "".join(f"{o:02X}" for o in octets)


MSI_STALL_MODES = (None, "once", "always")


class Simulator:
    """One simulated Windows enrollment. `run()` returns an EnrollmentResult or raises SimulatorError."""

    USER_AGENT = "ENROLLClient"
    BROWSER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; WebView/3.0) mdmportal-simulator"

    def __init__(self, base_url, email, password=None, federated=False, hololens=False,
                 device_enrollment=False, device_id=None, verify_tls=True, ca_file=None,
                 *, csr_hash="sha1", timeout=30, private_key=None, provisioning_package=False, pin=None,
                 context_items=None, entra_token=None, terms_url=None, msi_install_status="70", resolve=None,
                 client_cert_header=False, login_status="user", entra_enrollment_data=None,
                 follow_auth_policy=False, serial_number=None, hardware_hash=None, user_context_after=0,
                 second_user_at=None, msi_stall=None, clock_skew_hours=0, retry_rst=False, wbxml=False,
                 before_renew=None):
        self.discovery_url = discovery_url(base_url)
        # Extra (name, value) context items sent with the enrollment, e.g. Autopilot's ZeroTouchProvisioning
        # or OfflineAutoPilotEnrollmentCorrelator (never the serial number or hardware hash: see below).
        self.extra_context_items = list(context_items or [])
        self.secure = urllib.parse.urlsplit(self.discovery_url).scheme == "https"
        self.entra_token = entra_token
        self.entra_claims = jwt_claims(entra_token) if entra_token else {}
        # Entra clients discover with the account's UPN, none for a user-less run.
        claimed_upn = next((self.entra_claims[name] for name in ("upn", "unique_name", "preferred_username")
                            if isinstance(self.entra_claims.get(name), str)), "")
        self.email = email if email is not None else claimed_upn
        self.password = password
        self.pin = pin  # the registration PIN the sign-in page asks for (PIN and password, or PIN only)
        self.federated = federated or bool(entra_token)
        self.terms_url = terms_url
        self.enrollment_data = None
        # What the RST carries as EnrollmentData (the terms page's OpaqueBlob): "blob", the OpaqueBlob of the accepted
        # terms-of-use page; or, as Windows does when no blob came back, the literal "null", an empty
        # value or no item at all. By default the blob with a terms page, nothing without one.
        if entra_enrollment_data is None:
            entra_enrollment_data = "blob" if terms_url else "absent"
        if entra_enrollment_data not in ENROLLMENT_DATA_CHOICES:
            raise SimulatorError("entra-enrollment-data", f"{entra_enrollment_data!r} is not one of "
                                 f"{', '.join(ENROLLMENT_DATA_CHOICES)}")
        if (entra_enrollment_data == "blob") != bool(terms_url):
            raise SimulatorError("entra-enrollment-data", "the terms-of-use blob comes from the terms page: "
                                 "give a terms URL for 'blob', and none for 'null', 'empty' or 'absent'")
        self.entra_enrollment_data = entra_enrollment_data
        # As Windows' Settings does: offer OnPremise and Federated and take whichever the server answers
        # (its sign-in page for Federated, the password box for OnPremise) instead of insisting on one.
        self.follow_auth_policy = follow_auth_policy
        self.hololens = hololens
        self.device_enrollment = device_enrollment
        # As a provisioning package's Workplace/Enrollments does (Provisioning CSP): OnPremise only, the
        # service UPN and PIN in the UsernameToken, in the background, EnrollmentType Full [U].
        self.provisioning_package = provisioning_package
        if provisioning_package and (federated or device_enrollment or hololens):
            raise SimulatorError("provisioning-package", "a provisioning package enrolls a PC on-premise, Full")
        if device_id is not None and not (len(device_id) == 32 and all(c in "0123456789abcdefABCDEF" for c in device_id)):
            raise SimulatorError("device-id", f"{device_id!r} is not 32 hex digits")
        self.device_id = (device_id or secrets.token_hex(16)).upper()
        self.hw_dev_id = secrets.token_hex(32).upper()
        self.device_name = ("HOLOLENS-" if hololens else "DESKTOP-") + secrets.token_hex(4).upper()[:7]
        # What the PC answers to Gets on ./DevDetail/Ext/Microsoft/SMBIOSSerialNumber and
        # ./DevDetail/Ext/DeviceHardwareData (DevDetail CSP), as an Autopilot CSV would list it. Windows
        # puts neither in its enrollment request: the server has to ask.
        self.serial_number = serial_number or secrets.token_hex(6).upper()
        self.hardware_hash = hardware_hash or base64.b64encode(self.hw_dev_id.encode()).decode()
        self.csr_hash = csr_hash
        self.timeout = timeout
        # Benchmarks pass a pre-generated key so that client-side key generation stays out of the
        # server's figures; otherwise a fresh key is made as Windows does.
        self.private_key = private_key
        self._verify_tls, self._ca_file = verify_tls, ca_file
        # {(host, port): address} connections go to instead of the host's DNS address (--resolve).
        self._resolve = {(host.lower(), port): address for (host, port), address in (resolve or {}).items()}
        # How the device's certificate reaches the server once enrolled (renewal, check-in): over https
        # in the TLS handshake, as Windows does, for nginx to forward; in the X-SSL-Client-Cert header
        # nginx would have set when asked (a server without nginx in front) and always over plain http.
        self.client_cert_header = client_cert_header or not self.secure
        self._soap = soap_opener(shared_ssl_context(verify_tls, ca_file), self._resolve)
        self._browser_opener = None  # the web view's, with its cookies: made for the federated sign-in
        self._tls_openers = {}
        self.steps = []
        self.responses = {}
        # The device's configuration as the server's commands left it, kept across check-ins: nodes set
        # by Replace/Add and what app installs report (see ManagementClient.apply).
        self.nodes = {}
        # The last NextNonce the server gave for the APPSRV digest, kept across check-ins as the
        # device keeps it in its DM account (None: the AAUTHDATA of the provisioning document).
        self.appsrv_nonce = None
        # The Status an MSI install reaches (EnterpriseDesktopAppManagement: 70 completed, 60 failed).
        self.msi_install_status = str(msi_install_status)
        # An MSI install that parks, as seen in the field: its Status stays at 50 (enforcement in
        # progress) and never moves. "once": the first DownloadInstall of each product parks and one sent
        # again completes; "always": every one parks. None: installs end at msi_install_status.
        if msi_stall not in MSI_STALL_MODES:
            raise SimulatorError("msi-stall", f"{msi_stall!r} is not one of {', '.join(map(str, MSI_STALL_MODES))}")
        self.msi_stall = msi_stall
        self.msi_install_runs = {}  # product id -> DownloadInstall Execs received
        # What the 1224 LoginStatus alert of each check-in reports: "user" once someone signed in,
        # "none" during the device phase of setup (change it between check-ins).
        self.login_status = login_status
        # OMA-DM sessions run so far (ManagementClient.run counts them).
        self.sessions = 0
        # During the account-setup phase of OOBE the signed-in user's MDM context does not exist at
        # first: Windows answers 405 (Command not allowed) to every command under ./User/ in the first
        # `user_context_after` sessions, then carries them out (switch: --user-context-after).
        self.user_context_after = int(user_context_after or 0)
        # The session at which another person signs in to the device for the first time (switch:
        # --second-user). Windows shows that user an account-setup page ("Account setup: identifying")
        # unless DMClient FirstSyncStatus/SkipUserStatusPage is true on the device, and the page then
        # waits for a user-scope release the server gave the first user only, until its time-out: the
        # simulated device refuses to go on (SimulatorError "second-user") when the node is not set.
        self.second_user_at = second_user_at
        self.second_user_page = None  # "skipped" once the later user's sign-in got past the page
        # How far the device's clock is off ours (hours, negative: behind). Windows checks the
        # certificates it is given against its own clock (see now()).
        self.clock_skew = timedelta(hours=clock_skew_hours)
        # Send the RequestSecurityToken, drop the answer as if the connection had failed, and send
        # the very same message again; the second answer is the one kept.
        self.retry_rst = retry_rst
        # Send the first message of each OMA-DM session as WBXML (application/vnd.syncml.dm+wbxml)
        # and fall back to XML when the server refuses that Content-Type with 415.
        self.wbxml = wbxml
        # Called by renew() before it posts (e.g. to wait while the enrollment URL is regenerated).
        self.before_renew = before_renew

    def now(self):
        """The device's clock: ours, off by clock_skew."""
        return datetime.now(timezone.utc) + self.clock_skew

    @property
    def enrollment_type(self):
        return "Device" if self.device_enrollment else "Full"

    @property
    def offered_policies(self):
        return ["OnPremise"] if self.provisioning_package else ["OnPremise", "Federated"]

    @property
    def os_edition(self):
        return OSEDITION_HOLOLENS if self.hololens else OSEDITION_PRO

    @property
    def application_version(self):
        return HOLOLENS_VERSION if self.hololens else PC_VERSION

    # -- HTTP --------------------------------------------------------------------------------------

    def _open(self, opener, request, check, *, redirect_ok=False):
        try:
            response = opener.open(request, timeout=self.timeout)
            status, headers, body = response.status, response.headers, response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read(MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SimulatorError(check, f"cannot reach {request.full_url}: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise SimulatorError(check, f"the answer from {request.full_url} is larger than {MAX_RESPONSE_BYTES} bytes")
        if 300 <= status < 400 and not redirect_ok:
            raise SimulatorError(check, f"{request.full_url} answered {status} redirecting to {headers.get('Location')!r}; Windows does not follow redirects here")
        return status, headers, body

    def _timed(self, name, function, *args):
        started = time.perf_counter()
        value, detail = function(*args)
        self.steps.append(Step(name, time.perf_counter() - started, detail))
        return value

    def _post_soap(self, url, envelope, check, *, headers=None, opener=None):
        data = etree.tostring(envelope, xml_declaration=False, encoding="utf-8")
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": SOAP_CONTENT_TYPE, "User-Agent": self.USER_AGENT, "Accept": "*/*", **(headers or {}),
        })
        status, headers, body = self._open(opener or self._soap, request, check)
        content_type = headers.get("Content-Type", "")
        is_soap = content_type.split(";")[0].strip().lower() in ("application/soap+xml", "text/xml")
        # A fault may come with 500 (SOAP 1.2 allows it); read it rather than report a bare status.
        if status == 500 and is_soap:
            return body
        if status != 200:
            raise SimulatorError(check, f"{url} answered HTTP {status}: {_page_text(body)}")
        if content_type.split(";")[0].strip().lower() != "application/soap+xml":
            raise SimulatorError(f"{check}-content-type", f"Content-Type is {content_type!r}, expected application/soap+xml")
        if headers.get("Content-Length") is None:
            raise SimulatorError(f"{check}-content-length", "the answer has no Content-Length (Windows needs it: never chunked)")
        return body

    # -- messages ----------------------------------------------------------------------------------

    def _header(self, action, message_id, url, security=None):
        children = [
            A.Action(action, **{f"{{{SOAP12_NS}}}mustUnderstand": "1"}),
            A.MessageID(message_id),
            A.ReplyTo(A.Address(ANONYMOUS)),
            A.To(url, **{f"{{{SOAP12_NS}}}mustUnderstand": "1"}),
        ]
        if security is not None:
            children.append(security)
        return S.Header(*children)

    def _security(self, token):
        """MS-MDE2 3.3, 3.4: UsernameToken on-premise, the wresult as BinarySecurityToken
        federated, the Entra token as a JWT BinarySecurityToken."""
        must = {f"{{{SOAP12_NS}}}mustUnderstand": "1"}
        if self.entra_token is not None:
            encoded = base64.b64encode(self.entra_token.encode("ascii")).decode("ascii")
            return WSSE.Security(WSSE.BinarySecurityToken(encoded, ValueType=JWT_TOKEN, EncodingType=BASE64_BINARY), **must)
        if token is not None:
            encoded = base64.b64encode(token.encode("utf-8")).decode("ascii")
            return WSSE.Security(WSSE.BinarySecurityToken(encoded, ValueType=USER_TOKEN, EncodingType=BASE64_BINARY), **must)
        return WSSE.Security(
            WSSE.UsernameToken(
                WSSE.Username(self.email),
                WSSE.Password(self.password or "", **{f"{{{WSSE_NS}}}Type": PASSWORD_TEXT}),
                **{f"{{{WSU_NS}}}Id": f"uuid-{uuid.uuid4()}-1"},
            ),
            **must,
        )

    def discover_envelope(self, message_id):
        D = ElementMaker(namespace=DISCOVERY_NS, nsmap={None: DISCOVERY_NS})
        request = D.request(
            D.EmailAddress(self.email),
            D.RequestVersion(REQUEST_VERSION),
            D.DeviceType("CIMClient_Windows"),
            D.ApplicationVersion(self.application_version),
            D.OSEdition(self.os_edition),
            D.AuthPolicies(*[D.AuthPolicy(policy) for policy in self.offered_policies]),
        )
        return S.Envelope(self._header(DISCOVER_ACTION, message_id, self.discovery_url), S.Body(D.Discover(request)))

    def policies_envelope(self, message_id, url, token):
        X = ElementMaker(namespace=XCEP_NS, nsmap={None: XCEP_NS})
        nil = {f"{{{XSI_NS}}}nil": "true"}
        body = etree.Element(f"{{{SOAP12_NS}}}Body", nsmap={"xsi": XSI_NS, "xsd": XSD_NS})
        body.append(X.GetPolicies(X.client(X.lastUpdate(**nil), X.preferredLanguage(**nil)), X.requestFilter(**nil)))
        return S.Envelope(self._header(GET_POLICIES_ACTION, message_id, url, self._security(token)), body)

    def context_items(self):
        """MS-MDE2 AdditionalContext items, as a Windows client of the simulated kind sends them."""
        return [
            ("UXInitiated", "false" if self.device_enrollment or self.provisioning_package else "true"),
            ("HWDevID", self.hw_dev_id),
            ("Locale", "en-US"),
            ("TargetedUserLoggedIn", "true"),
            ("OSEdition", self.os_edition),
            ("DeviceName", self.device_name),
            ("MAC", _random_mac()),
            ("DeviceID", self.device_id),
            ("EnrollmentType", self.enrollment_type),
            ("DeviceType", "CIMClient_Windows"),
            ("OSVersion", self.application_version),
            ("ApplicationVersion", self.application_version),
            ("NotInOobe", "true"),
            ("RequestVersion", REQUEST_VERSION),
            *self.extra_context_items,
        ] + self._enrollment_data_items()

    def _enrollment_data_items(self):
        """The EnrollmentData context item as entra_enrollment_data says (absent outside Entra runs)."""
        if not self.entra_token:
            return [("EnrollmentData", self.enrollment_data)] if self.enrollment_data else []
        return {
            "blob": [("EnrollmentData", self.enrollment_data)] if self.enrollment_data else [],
            "null": [("EnrollmentData", "null")],
            "empty": [("EnrollmentData", "")],
            "absent": [],
        }[self.entra_enrollment_data]

    def enrollment_envelope(self, message_id, url, token, csr_der):
        T = ElementMaker(namespace=WST_NS, nsmap={"wst": WST_NS, "wsse": WSSE_NS, "ac": AC_NS})
        AC = ElementMaker(namespace=AC_NS)
        items = [AC.ContextItem(AC.Value(value), Name=name) for name, value in self.context_items()]
        rst = T.RequestSecurityToken(
            T.TokenType(TOKEN_TYPE),
            T.RequestType(ISSUE),
            WSSE.BinarySecurityToken(base64.b64encode(csr_der).decode("ascii"), ValueType=PKCS10, EncodingType=BASE64_BINARY),
            AC.AdditionalContext(*items),
        )
        return S.Envelope(self._header(RST_ACTION, message_id, url, self._security(token)), S.Body(rst))

    def renewal_envelope(self, message_id, url, signed_request):
        """MS-MDE2 3.5.4.1.1.1: RequestType Renew and the PKCS#7, no user token (the TLS client certificate is the
        credential); the context items Microsoft's renewal sample sends, plus our DeviceID."""
        T = ElementMaker(namespace=WST_NS, nsmap={"wst": WST_NS, "wsse": WSSE_NS, "ac": AC_NS})
        AC = ElementMaker(namespace=AC_NS)
        items = [("DeviceType", "CIMClient_Windows"), ("ApplicationVersion", self.application_version),
                 ("DeviceID", self.device_id)]
        rst = T.RequestSecurityToken(
            T.TokenType(TOKEN_TYPE),
            T.RequestType(RENEW),
            WSSE.BinarySecurityToken(base64.b64encode(signed_request).decode("ascii"), ValueType=PKCS7,
                                     EncodingType=BASE64_BINARY),
            AC.AdditionalContext(*[AC.ContextItem(AC.Value(value), Name=name) for name, value in items]),
        )
        return S.Envelope(self._header(RST_ACTION, message_id, url), S.Body(rst))

    def _opener(self, context, *handlers):
        return build_opener(context, self._resolve, *handlers)

    @property
    def _browser(self):
        """The opener of the sign-in web view: it keeps the pages' cookies (the CSRF cookie) and follows
        redirects, as a browser does."""
        if self._browser_opener is None:
            context = shared_ssl_context(self._verify_tls, self._ca_file)
            self._browser_opener = self._opener(context, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        return self._browser_opener

    def device_opener(self, certificate, private_key):
        """(opener, headers) for a request authenticated by the device's certificate: the certificate
        in the TLS handshake, or the header nginx would forward (see client_cert_header)."""
        if self.client_cert_header:
            return self._soap, {CLIENT_CERT_HEADER: client_certificate_header(certificate)}
        key = thumbprint(certificate)
        if key not in self._tls_openers:
            self._tls_openers[key] = self._client_tls_opener(certificate, private_key)
        return self._tls_openers[key], {}

    def _client_tls_opener(self, certificate, private_key):
        """Present the client certificate in the TLS handshake as Windows does (nginx then forwards
        it); ssl only loads a key pair from files, so they live in a private temporary folder for the
        time it takes to load them."""
        context = _ssl_context(self._verify_tls, self._ca_file)
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = os.path.join(folder, "client.pem"), os.path.join(folder, "client.key")
            with open(cert_file, "wb") as out:
                out.write(certificate.public_bytes(serialization.Encoding.PEM))
            with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                out.write(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
            context.load_cert_chain(cert_file, key_file)
        return self._opener(context, _RefuseRedirects())

    # -- steps -------------------------------------------------------------------------------------

    def probe(self):
        request = urllib.request.Request(self.discovery_url, method="GET", headers={"User-Agent": self.USER_AGENT})
        status, _, _ = self._open(self._soap, request, "probe")
        if status != 200:
            raise SimulatorError("probe", f"GET {self.discovery_url} answered HTTP {status}, expected 200")
        return None, "200 OK"

    def discover(self):
        message_id = new_message_id()
        body = self._post_soap(self.discovery_url, self.discover_envelope(message_id), "discover")
        self.responses["discover"] = envelope = parse_xml(body, "discover")
        discovery = parse_discover_response(envelope, message_id, secure=self.secure, entra=bool(self.entra_token))
        expected = "Federated" if self.federated else "OnPremise"
        if self.follow_auth_policy and not self.entra_token:
            expected = discovery.auth_policy  # Windows follows the server's choice
        if discovery.auth_policy != expected and self.entra_token:
            raise SimulatorError("discover-auth-policy", f"the server chose {discovery.auth_policy}, not Federated: is "
                                 "Entra ID enrollment switched on and fully configured there?")
        if discovery.auth_policy != expected:
            hint = "without --federated" if discovery.auth_policy == "OnPremise" else "with --federated"
            raise SimulatorError("discover-auth-policy", f"the server chose {discovery.auth_policy}, we expected {expected}; run {hint}")
        return discovery, f"AuthPolicy {discovery.auth_policy}, EnrollmentVersion {discovery.enrollment_version}"

    def sign_in(self, authentication_url):
        url = sign_in_url(authentication_url, self.email)
        request = urllib.request.Request(url, headers={"User-Agent": self.BROWSER_AGENT})
        status, headers, page = self._open(self._browser, request, "sign-in-page")
        if status != 200:
            raise SimulatorError("sign-in-page", f"GET {url} answered HTTP {status}: {_page_text(page)}")
        action, fields = fill_sign_in_form(page, url, self.email, self.password or "", self.pin)
        post = urllib.request.Request(action, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
            "User-Agent": self.BROWSER_AGENT, "Content-Type": "application/x-www-form-urlencoded",
            **form_post_headers(url, action, headers.get("Referrer-Policy")),
        })
        status, _, result = self._open(self._browser, post, "sign-in")
        if status != 200:
            raise SimulatorError("sign-in", f"POST {action} answered HTTP {status}: {_page_text(result)}")
        return read_auto_post(result, action), "wresult received"

    @property
    def certificate_subject(self):
        """An Entra join's certificate is named after the Entra device id."""
        if self.entra_token and self.device_enrollment and isinstance(self.entra_claims.get("deviceid"), str):
            return self.entra_claims["deviceid"]
        return self.device_id

    def accept_terms(self):
        """The terms-of-use page (Entra integration with MDM) in the web view, accepted; its OpaqueBlob goes back as
        the EnrollmentData context item. Device enrollments play the OOBE join (FRX, no Decline)."""
        request_id = str(uuid.uuid4())
        url = terms_page_url(self.terms_url, request_id, self.device_enrollment)
        headers = {"User-Agent": self.BROWSER_AGENT, "Authorization": f"Bearer {self.entra_token}",
                   "CXH-HOST": "FRX" if self.device_enrollment else "MOSET"}
        status, response_headers, page = self._open(self._soap, urllib.request.Request(url, headers=headers),
                                                    "terms-page", redirect_ok=True)
        if 300 <= status < 400:
            read_terms_answer(response_headers.get("Location"), request_id)  # raises on the error it carries
            raise SimulatorError("terms-page", f"redirected without showing the terms: {response_headers.get('Location')}")
        if status != 200:
            raise SimulatorError("terms-page", f"GET {url} answered HTTP {status}: {_page_text(page)}")
        action, fields = accept_form(page, url, joining=self.device_enrollment)
        post = urllib.request.Request(action, data=urllib.parse.urlencode(fields).encode(), method="POST", headers={
            "User-Agent": self.BROWSER_AGENT, "Content-Type": "application/x-www-form-urlencoded"})
        status, response_headers, page = self._open(self._soap, post, "terms-answer", redirect_ok=True)
        if status != 302:
            raise SimulatorError("terms-answer", f"POST {action} answered HTTP {status}, expected 302: {_page_text(page)}")
        self.enrollment_data = read_terms_answer(response_headers.get("Location"), request_id)
        return self.enrollment_data, "accepted, OpaqueBlob received"

    def get_policies(self, url, token):
        message_id = new_message_id()
        body = self._post_soap(url, self.policies_envelope(message_id, url, token), "policies")
        self.responses["policies"] = envelope = parse_xml(body, "policies")
        policy = parse_policies_response(envelope, message_id)
        return policy, f"minimalKeyLength {policy.minimal_key_length}, hash {policy.hash_oid or 'default'}"

    def make_key(self, policy):
        """The device key, of at least the policy's minimalKeyLength (MS-XCEP)."""
        size = max(2048, policy.minimal_key_length)
        if self.private_key is not None:
            if self.private_key.key_size < size:
                raise SimulatorError("keygen", f"the given key has {self.private_key.key_size} bits; the policy asks for {size}")
            return self.private_key, f"given RSA {self.private_key.key_size}"
        return rsa.generate_private_key(public_exponent=65537, key_size=size), f"RSA {size}"

    def enroll(self, url, token, key):
        csr = build_windows_csr(key, self.device_id, hash_name=self.csr_hash)
        message_id = new_message_id()
        envelope = self.enrollment_envelope(message_id, url, token, csr)
        if self.retry_rst:
            # The answer is lost on the way (a dropped connection, a proxy timing out): Windows has
            # nothing, and sends the very same message again.
            self.responses["enroll-lost"] = parse_xml(self._post_soap(url, envelope, "enroll-first"), "enroll-first")
        body = self._post_soap(url, envelope, "enroll")
        self.responses["enroll"] = envelope = parse_xml(body, "enroll")
        document = parse_enrollment_response(envelope, message_id)
        provisioning, tree = validate_provisioning_document(
            document, public_key=key.public_key(), device_id=self.device_id, device_enrollment=self.device_enrollment,
            subject=self.certificate_subject, now=self.now(),
        )
        subject = provisioning.certificate.subject.rfc4514_string()
        return (key, provisioning, tree), f"certificate {subject} in My/{provisioning.store_location}"

    def renew(self, result):
        """ROBO certificate renewal (MS-MDE2 3.5) of the enrollment `result` (from run() or an earlier
        renew()): a fresh key and Windows-style CSR, wrapped in a PKCS#7 signed by the current key,
        posted to the enrollment service with the current certificate as the client certificate (in
        the TLS handshake, or the header nginx would forward: see client_cert_header). Returns a
        RenewalResult whose `enrollment` carries the new certificate and key; raises SimulatorError
        (SoapFaultError when the server refuses)."""
        schedule = result.provisioning.renewal
        if schedule is None or not schedule.robo_support:
            raise SimulatorError("renew-not-offered", "the provisioning document does not offer ROBO renewal "
                                 "(CertificateStore/My/WSTEP/Renew/ROBOSupport)")
        if self.before_renew is not None:
            self.before_renew()
        started = time.perf_counter()
        previous, current_key = result.certificate, result.private_key
        key = rsa.generate_private_key(public_exponent=65537, key_size=max(2048, current_key.key_size))
        csr = build_windows_csr(key, self.device_id, hash_name=self.csr_hash)
        signed = signed_renewal_request(previous, current_key, csr)
        url = result.discovery.enrollment_url
        message_id = new_message_id()
        opener, headers = self.device_opener(previous, current_key)
        body = self._post_soap(url, self.renewal_envelope(message_id, url, signed), "renew", headers=headers,
                               opener=opener)
        self.responses["renew"] = envelope = parse_xml(body, "renew")
        document = parse_enrollment_response(envelope, message_id, check="renew")
        certificate = validate_renewal_document(document, public_key=key.public_key(), previous=previous,
                                                provisioning=result.provisioning,
                                                device_enrollment=self.device_enrollment, now=self.now())
        enrollment = replace(result, private_key=key, provisioning=replace(result.provisioning, certificate=certificate))
        return RenewalResult(previous=previous, certificate=certificate, private_key=key, enrollment=enrollment,
                             seconds=time.perf_counter() - started)

    def msi_run_status(self, product):
        """The Status an MSI install of `product` reaches this time (see msi_stall)."""
        runs = self.msi_install_runs[product] = self.msi_install_runs.get(product, 0) + 1
        if self.msi_stall == "always" or (self.msi_stall == "once" and runs == 1):
            return MSI_PARKED_STATUS
        return self.msi_install_status

    def checkin(self, result, *, digest=False, unenroll=False):
        """One OMA-DM session after `result` (from run()): package 1 with the client certificate (in
        the TLS handshake or the header nginx forwards, see client_cert_header; or the APPSRV digest),
        a plausible answer to every command, until the server's Status-only reply. Returns a
        CheckinResult; raises SimulatorError."""
        return ManagementClient(self, result, digest=digest, unenroll=unenroll).run()

    def run(self):
        self.steps, self.responses = [], {}
        self._timed("probe", self.probe)
        discovery = self._timed("discover", self.discover)
        token = None
        if self.entra_token and self.terms_url:
            self._timed("terms", self.accept_terms)
        elif discovery.auth_policy == "Federated" and not self.entra_token:
            token = self._timed("sign-in", self.sign_in, discovery.authentication_url)
        policy = self._timed("policies", self.get_policies, discovery.policy_url, token)
        key = self._timed("keygen", self.make_key, policy)
        key, provisioning, tree = self._timed("enroll", self.enroll, discovery.enrollment_url, token, key)
        return EnrollmentResult(
            discovery_url=self.discovery_url, device_id=self.device_id, hw_dev_id=self.hw_dev_id,
            device_name=self.device_name, os_edition=self.os_edition, enrollment_type=self.enrollment_type, discovery=discovery,
            policy=policy, provisioning=provisioning, private_key=key, provisioning_document=tree,
            responses=dict(self.responses), steps=list(self.steps),
        )
