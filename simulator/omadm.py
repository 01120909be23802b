"""The OMA-DM side of a simulated Windows device (MS-MDM, OMA DM 1.2): its DevInfo/DevDetail tree,
package 1, the APPSRV digest, every reply of the server checked against docs/omadm-sessions.md, and
what the device does with each command (Status and Results), the field behaviours included: MSI
installs that park, the user's context that does not exist yet, a later user's first sign-in."""
import base64
import hashlib
import secrets
import urllib.request

from lxml import etree
from lxml.builder import ElementMaker

from .errors import SimulatorError
from .provisioning import _parms
from .results import CheckinResult, ServerMessage
from .soap import _text, parse_xml
from .transport import _page_text

# The OMA-DM literals, spelled out on purpose (see the package docstring): the client's are its own.

SYNCML_NS = "SYNCML:SYNCML1.2"
METINF_NS = "syncml:metinf"
SYNCML_CONTENT_TYPE = "application/vnd.syncml.dm+xml"
WBXML_CONTENT_TYPE = "application/vnd.syncml.dm+wbxml"
OMADM_USER_AGENT = "MSFT OMA DM Client/1.2.0.1"
MANAGEMENT_QUERY = "mode=Maintenance&Platform=WoA"
LOGIN_STATUS_TYPE = "com.microsoft/MDM/LoginStatus"
UNENROLL_TYPE = "com.microsoft:mdm.unenrollment.userrequest"
AUTH_MD5_TYPE = "syncml:auth-md5"
SERVER_VERBS = ("Get", "Replace", "Add", "Delete", "Exec", "Atomic", "Sequence")
MSI_INSTALL_SUFFIX = "/DownloadInstall"
MSI_ROOT = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/"
IS_SYNC_DONE = "/FirstSyncStatus/IsSyncDone"
USER_SCOPE = "./User/"
COMMAND_NOT_ALLOWED = "405"
MAX_SESSION_MESSAGES = 50
MSI_PARKED_STATUS = "50"  # EnterpriseDesktopAppManagement Status: enforcement in progress

SML = ElementMaker(namespace=SYNCML_NS, nsmap={None: SYNCML_NS})
MET = ElementMaker(namespace=METINF_NS, nsmap={None: METINF_NS})
_SML = {"s": SYNCML_NS, "m": METINF_NS}


def fake_device_tree(simulator, hololens=False):
    """A small DevInfo/DevDetail tree of the kind of device simulated (values as Windows reports them)."""
    tree = {
        "./DevInfo/DevId": simulator.device_id,
        "./DevInfo/Man": "Microsoft Corporation",
        "./DevInfo/Mod": "HoloLens 2" if hololens else "Surface Laptop 5",
        "./DevInfo/DmV": "1.3",
        "./DevInfo/Lang": "en-US",
        "./DevDetail/SwV": simulator.application_version,
        "./DevDetail/OEM": "Microsoft Corporation",
        "./DevDetail/HwV": "1.0",
        "./DevDetail/FwV": "22.11.0",
        "./DevDetail/DevTyp": "HoloLens 2" if hololens else "Surface Laptop 5",
        "./DevDetail/Ext/Microsoft/DeviceName": simulator.device_name,
        "./DevDetail/Ext/Microsoft/DNSComputerName": simulator.device_name,
        "./DevDetail/Ext/Microsoft/OSPlatform": "Windows Holographic for Business" if hololens else "Windows 11 Pro",
        "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": simulator.serial_number,
        "./DevDetail/Ext/Microsoft/ProcessorArchitecture": "12" if hololens else "9",
        "./DevDetail/Ext/Microsoft/TotalRAM": "4096" if hololens else "16384",
        "./DevDetail/Ext/DeviceHardwareData": simulator.hardware_hash,
        "./Vendor/MSFT/DeviceStatus/OS/Edition": simulator.os_edition,
    }
    return tree


def appsrv_credentials(tree):
    """(AAUTHNAME, AAUTHSECRET, AAUTHDATA) of the APPSRV APPAUTH block of a provisioning document."""
    for block in tree.getroot().iter("characteristic"):
        if block.get("type") != "APPAUTH":
            continue
        parms = _parms(block)
        if parms.get("AAUTHLEVEL") == "APPSRV":
            return parms.get("AAUTHNAME") or "", parms.get("AAUTHSECRET") or "", parms.get("AAUTHDATA") or ""
    raise SimulatorError("checkin-appauth", "the provisioning document has no APPSRV APPAUTH block")


def md5_credentials(name, secret, nonce_b64):
    """OMA-DM syncml:auth-md5: b64(md5(b64(md5("name:secret")) + ":" + nonce))."""
    inner = base64.b64encode(hashlib.md5(f"{name}:{secret}".encode()).digest())
    nonce = base64.b64decode(nonce_b64)
    return base64.b64encode(hashlib.md5(inner + b":" + nonce).digest()).decode()


class ManagementClient:
    """The OMA-DM side of a simulated Windows device: one session per `run()`."""

    def __init__(self, simulator, result, *, digest=False, unenroll=False, hololens=None):
        self.simulator, self.result = simulator, result
        self.digest, self.unenroll = digest, unenroll
        self.tree = fake_device_tree(simulator, simulator.hololens if hololens is None else hololens)
        self.name, self.secret, self.nonce = appsrv_credentials(result.provisioning_document)
        self.nonce = simulator.appsrv_nonce or self.nonce
        url = result.provisioning.management_url
        self.url = f"{url}{'&' if '?' in url else '?'}{MANAGEMENT_QUERY}"
        self.session_id = format(secrets.randbelow(0xFFFF) + 1, "X")
        self.msg_id = 0
        self.wbxml_refused = None

    def _header(self, with_credentials):
        children = [SML.VerDTD("1.2"), SML.VerProto("DM/1.2"), SML.SessionID(self.session_id),
                    SML.MsgID(str(self.msg_id)), SML.Target(SML.LocURI(self.result.provisioning.management_url)),
                    SML.Source(SML.LocURI(self.simulator.device_id))]
        if with_credentials:
            cred = md5_credentials(self.name, self.secret, self.nonce)
            children.append(SML.Cred(SML.Meta(MET.Format("b64"), MET.Type(AUTH_MD5_TYPE)), SML.Data(cred)))
        return SML.SyncHdr(*children)

    def package1(self):
        """First message (MS-MDM): 1201, 1224 LoginStatus, Replace of DevInfo (and 1226 when unenrolling)."""
        body = [
            SML.Alert(SML.CmdID("2"), SML.Data("1201")),
            SML.Alert(SML.CmdID("3"), SML.Data("1224"), SML.Item(SML.Meta(MET.Type(LOGIN_STATUS_TYPE)),
                                                                   SML.Data(self.simulator.login_status))),
            SML.Replace(SML.CmdID("4"), *[SML.Item(SML.Source(SML.LocURI(uri)), SML.Data(self.tree[uri]))
                                          for uri in ("./DevInfo/DevId", "./DevInfo/Man", "./DevInfo/Mod",
                                                      "./DevInfo/DmV", "./DevInfo/Lang")]),
        ]
        if self.unenroll:
            body.append(SML.Alert(SML.CmdID("5"), SML.Data("1226"), SML.Item(
                SML.Source(SML.LocURI(f"./Vendor/MSFT/DMClient/Provider/{self.result.provisioning.provider_id}/Unenroll")),
                SML.Meta(MET.Type(UNENROLL_TYPE), MET.Format("int")), SML.Data("1"))))
        return body, {"2": "Alert", "3": "Alert", "4": "Replace", **({"5": "Alert"} if self.unenroll else {})}

    def post(self, body, with_credentials):
        self.msg_id += 1
        document = SML.SyncML(self._header(with_credentials), SML.SyncBody(*body, SML.Final()))
        data = etree.tostring(document, xml_declaration=True, encoding="utf-8")
        headers = {"Content-Type": SYNCML_CONTENT_TYPE, "User-Agent": OMADM_USER_AGENT}
        opener = self.simulator._soap
        if not self.digest:
            opener, cert_headers = self.simulator.device_opener(self.result.certificate, self.result.private_key)
            headers.update(cert_headers)
        if self.simulator.wbxml and self.msg_id == 1 and self.wbxml_refused is None:
            self.wbxml_refused = self.try_wbxml(data, headers, opener)
        request = urllib.request.Request(self.url, data=data, method="POST", headers=headers)
        status, response_headers, content = self.simulator._open(opener, request, "checkin")
        if status != 200:
            raise SimulatorError("checkin-http", f"{self.url} answered HTTP {status}: {_page_text(content)}")
        if response_headers.get("Content-Type", "").split(";")[0].strip().lower() != SYNCML_CONTENT_TYPE:
            raise SimulatorError("checkin-content-type", f"Content-Type is {response_headers.get('Content-Type')!r}")
        if response_headers.get("Content-Length") is None:
            raise SimulatorError("checkin-content-length", "the answer has no Content-Length")
        return content

    def try_wbxml(self, data, headers, opener):
        """Post the first message as WBXML; the server must refuse it with 415 Unsupported Media Type
        naming XML in Accept (RFC 9110 15.5.16), and the same message then goes again as XML with the
        same MsgID (the refused one was never processed). The simulator has no WBXML encoder: the
        body is the XML message under the WBXML Content-Type, so a server answering anything but 415
        fails here. Returns the Accept header."""
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={**headers, "Content-Type": WBXML_CONTENT_TYPE})
        status, response_headers, content = self.simulator._open(opener, request, "checkin-wbxml")
        if status != 415:
            raise SimulatorError("checkin-wbxml", f"{self.url} answered HTTP {status} to a WBXML message, expected "
                                 f"415 Unsupported Media Type: {_page_text(content)}")
        accept = response_headers.get("Accept", "")
        if SYNCML_CONTENT_TYPE not in [value.split(";")[0].strip().lower() for value in accept.split(",")]:
            raise SimulatorError("checkin-wbxml-accept", f"the 415 answer's Accept is {accept!r}; it should name "
                                 f"{SYNCML_CONTENT_TYPE} for the device to fall back to")
        return accept

    def read(self, content, sent, expected_msg_id):
        """Reply rules 1-4 of docs/omadm-sessions.md, checked; returns a ServerMessage."""
        root = parse_xml(content, "checkin")
        if root.tag != f"{{{SYNCML_NS}}}SyncML":
            raise SimulatorError("checkin", f"the answer is <{root.tag}>, not SyncML 1.2")
        header = root.find("s:SyncHdr", _SML)
        body = root.find("s:SyncBody", _SML)
        if header is None or body is None:
            raise SimulatorError("checkin", "SyncHdr or SyncBody missing")
        value = lambda element, path: _text(element.find(path, _SML))  # noqa: E731
        if value(header, "s:SessionID") != self.session_id or value(header, "s:VerProto") != "DM/1.2":
            raise SimulatorError("checkin-header", "the reply does not carry our SessionID and DM/1.2")
        if value(header, "s:Target/s:LocURI") != self.simulator.device_id:
            raise SimulatorError("checkin-header", "the reply's Target is not our DeviceID")
        msg_id = value(header, "s:MsgID")
        if msg_id != str(expected_msg_id):
            raise SimulatorError("checkin-msgid", f"server MsgID {msg_id!r}, expected {expected_msg_id}")
        elements = list(body)
        statuses = [e for e in elements if etree.QName(e).localname == "Status"]
        cmd_ids = [value(e, "s:CmdID") for e in elements if etree.QName(e).localname != "Final"]
        if len(set(cmd_ids)) != len(cmd_ids):
            raise SimulatorError("checkin-cmdid", f"CmdIDs repeat in one message: {cmd_ids}")
        if not statuses or value(statuses[0], "s:Cmd") != "SyncHdr" or value(statuses[0], "s:CmdRef") != "0":
            raise SimulatorError("checkin-status", "the first element is not the Status of our SyncHdr")
        for status in statuses:
            if value(status, "s:MsgRef") != str(self.msg_id):
                raise SimulatorError("checkin-msgref", f"a Status has MsgRef {value(status, 's:MsgRef')}, our MsgID is {self.msg_id}")
        answered = {value(s, "s:CmdRef"): (value(s, "s:Cmd"), value(s, "s:Data")) for s in statuses[1:]}
        header_status = statuses[0]
        # A challenge (401/407) answers the credentials only: the commands were not processed.
        challenged = value(header_status, "s:Data") in ("401", "407")
        if not challenged and (set(answered) != set(sent) or any(answered[ref][0] != name for ref, name in sent.items())):
            raise SimulatorError("checkin-statuses", f"Statuses for {sorted(answered)}, expected one per command {sorted(sent)}")
        nonce = value(header_status, "s:Chal/s:Meta/m:NextNonce")
        if nonce:
            self.nonce = self.simulator.appsrv_nonce = nonce
        commands = []
        for element in elements:
            name = etree.QName(element).localname
            if name in SERVER_VERBS:
                items = element.findall("s:Item", _SML)
                if len(items) != 1:
                    raise SimulatorError("checkin-items", f"{name} {value(element, 's:CmdID')} has {len(items)} Items, expected one")
                target = value(items[0], "s:Target/s:LocURI")
                if target.startswith("/"):
                    raise SimulatorError("checkin-locuri", f"LocURI {target!r} starts with '/'")
                commands.append((name, value(element, "s:CmdID"), target, value(items[0], "s:Meta/m:Format"),
                                 value(items[0], "s:Data")))
        if body.find("s:Final", _SML) is None:
            raise SimulatorError("checkin-final", "the reply has no Final")
        return ServerMessage(int(msg_id), value(header_status, "s:Data"), [(r, c, d) for r, (c, d) in answered.items()], commands)

    def respond(self, message):
        """A Status for the SyncHdr and per command; a Results per successful Get."""
        body = [SML.Status(SML.CmdID("1"), SML.MsgRef(str(message.msg_id)), SML.CmdRef("0"), SML.Cmd("SyncHdr"),
                           SML.Data("200"))]
        cmd_id = 2
        for verb, ref, target, _format, data in message.commands:
            code = self.apply(verb, target, data)
            message.answers.append(code)
            body.append(SML.Status(SML.CmdID(str(cmd_id)), SML.MsgRef(str(message.msg_id)), SML.CmdRef(ref),
                                   SML.Cmd(verb), SML.Data(code)))
            cmd_id += 1
        for (verb, ref, target, _format, _data), code in zip(message.commands, message.answers):
            if verb == "Get" and code == "200":
                body.append(SML.Results(SML.CmdID(str(cmd_id)), SML.MsgRef(str(message.msg_id)), SML.CmdRef(ref),
                                        SML.Item(SML.Source(SML.LocURI(target)), SML.Meta(MET.Format("chr")),
                                                 SML.Data(self.node(target)))))
                cmd_id += 1
        return body

    def node(self, target):
        return self.simulator.nodes.get(target, self.tree.get(target))

    def skip_user_status_page(self):
        """DMClient FirstSyncStatus/SkipUserStatusPage as the device holds it: a device-only node, which a
        server may name with or without the ./Device/ scope (dmclient-csp)."""
        node = f"Vendor/MSFT/DMClient/Provider/{self.result.provisioning.provider_id}/FirstSyncStatus/SkipUserStatusPage"
        value = self.simulator.nodes.get(f"./Device/{node}", self.simulator.nodes.get(f"./{node}"))
        return (value or "").strip().lower() in ("true", "1")

    def second_user_signs_in(self):
        """A later user's first sign-in: on a device whose server set up the Enrollment Status Page (any
        FirstSyncStatus node), past the account-setup page only when the server set SkipUserStatusPage;
        otherwise Windows would sit at "Account setup: identifying" until the time-out."""
        configured = any("/FirstSyncStatus/" in node for node in self.simulator.nodes)
        if configured and not self.skip_user_status_page():
            raise SimulatorError("second-user", "a later user's first sign-in would wait at \"Account setup: "
                                                "identifying\" until the page's time-out: the server never set "
                                                "DMClient FirstSyncStatus/SkipUserStatusPage to true")
        self.simulator.second_user_page = "skipped"
        self.simulator.login_status = "user"

    def apply(self, verb, target, data):
        """What a Windows device does with one command, as its Status code (as a string)."""
        if target.startswith(USER_SCOPE) and self.simulator.sessions <= self.simulator.user_context_after:
            return COMMAND_NOT_ALLOWED  # the signed-in user's MDM context does not exist yet
        if verb == "Get":
            return "404" if self.node(target) is None else "200"
        if verb in ("Replace", "Add"):
            if target.endswith(IS_SYNC_DONE) and self.simulator.nodes.get(target) == "true":
                return "405"  # dmclient-csp: IsSyncDone cannot be set from true to true
            self.simulator.nodes[target] = data
            return "200"
        if verb == "Exec" and target.startswith(MSI_ROOT) and target.endswith(MSI_INSTALL_SUFFIX):
            # The install runs in the background; its Status node tells how it went.
            product = target[len(MSI_ROOT):-len(MSI_INSTALL_SUFFIX)]
            status = self.simulator.msi_run_status(product)
            self.simulator.nodes[f"{MSI_ROOT}{product}/Status"] = status
            failed = status not in ("70", MSI_PARKED_STATUS)
            self.simulator.nodes[f"{MSI_ROOT}{product}/LastError"] = "-2147023293" if failed else "0"
            return "202"
        if verb == "Delete":
            self.simulator.nodes.pop(target, None)
        return "200"

    def run(self):
        self.simulator.sessions += 1
        if self.simulator.second_user_at is not None and self.simulator.sessions == self.simulator.second_user_at:
            self.second_user_signs_in()
        body, sent = self.package1()
        content = self.post(body, with_credentials=self.digest)
        messages = []
        challenged = False
        while True:
            message = self.read(content, sent, expected_msg_id=len(messages) + 1)
            messages.append(message)
            if message.header_code in ("401", "407"):
                if challenged or not self.digest:
                    raise SimulatorError("checkin-auth", f"the server refused our credentials (SyncHdr {message.header_code})")
                challenged = True
                body, sent = self.package1()
                content = self.post(body, with_credentials=True)
                continue
            if message.header_code not in ("200", "212"):
                raise SimulatorError("checkin-auth", f"SyncHdr Status {message.header_code}")
            if not message.commands:
                return CheckinResult(self.session_id, "digest" if self.digest else "certificate", messages,
                                     wbxml_refused=self.wbxml_refused)
            if len(messages) >= MAX_SESSION_MESSAGES:
                raise SimulatorError("checkin-endless", f"the session did not end after {MAX_SESSION_MESSAGES} messages")
            body, sent = self.respond(message), {}
            # Without a client certificate every message carries a digest, made with the NextNonce of
            # the reply before (OMA DM 1.2 Security; MS-MDM "OMA DM protocol support": after a 200
            # with a Chal, Windows sends credentials again with the next nonce; only a 212 would
            # have let it stop).
            content = self.post(body, with_credentials=self.digest and message.header_code != "212")
