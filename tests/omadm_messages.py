"""SyncML messages as a Windows device sends them (a session's first message and replies), for the OMA-DM
endpoint tests, and a reader for the server's replies."""
import base64
import hashlib
from dataclasses import dataclass, field

from lxml import etree
from lxml.builder import ElementMaker

NS = "SYNCML:SYNCML1.2"
METINF = "syncml:metinf"
CONTENT_TYPE = "application/vnd.syncml.dm+xml"
URL = "/ManagementServer/MDM.svc?mode=Maintenance&Platform=WoA"
S = ElementMaker(namespace=NS, nsmap={None: NS})
M = ElementMaker(namespace=METINF, nsmap={None: METINF})
NSMAP = {"s": NS, "m": METINF}


def header(device_id, *, session="1", msg="1", cred=None):
    children = [S.VerDTD("1.2"), S.VerProto("DM/1.2"), S.SessionID(session), S.MsgID(str(msg)),
                S.Target(S.LocURI("https://mdm.example.com/ManagementServer/MDM.svc")),
                S.Source(S.LocURI(device_id))]
    if cred:
        cred_type, data = cred
        children.append(S.Cred(S.Meta(M.Format("b64"), M.Type(cred_type)), S.Data(data)))
    return S.SyncHdr(*children)


def message(device_id, body, *, session="1", msg="1", cred=None, final=True):
    children = list(body) + ([S.Final()] if final else [])
    return etree.tostring(S.SyncML(header(device_id, session=session, msg=msg, cred=cred), S.SyncBody(*children)))


def alert(cmd_id, code, *items):
    return S.Alert(S.CmdID(str(cmd_id)), S.Data(str(code)), *items)


def typed_item(meta_type, data, source=None, fmt=None):
    meta = [M.Type(meta_type)] + ([M.Format(fmt)] if fmt else [])
    parts = ([S.Source(S.LocURI(source))] if source else []) + [S.Meta(*meta), S.Data(data)]
    return S.Item(*parts)


def package1(device_id, *, login="user", session="1", cred=None, model="Surface Laptop 5"):
    replace = S.Replace(S.CmdID("4"), *[
        S.Item(S.Source(S.LocURI(uri)), S.Data(value)) for uri, value in (
            ("./DevInfo/DevId", device_id), ("./DevInfo/Man", "Microsoft Corporation"),
            ("./DevInfo/Mod", model), ("./DevInfo/DmV", "1.3"), ("./DevInfo/Lang", "en-US"))])
    return message(device_id, [alert(2, 1201), alert(3, 1224, typed_item("com.microsoft/MDM/LoginStatus", login)),
                               replace], session=session, cred=cred)


def status(cmd_id, msg_ref, cmd_ref, cmd, code):
    return S.Status(S.CmdID(str(cmd_id)), S.MsgRef(str(msg_ref)), S.CmdRef(str(cmd_ref)), S.Cmd(cmd), S.Data(str(code)))


def results(cmd_id, msg_ref, cmd_ref, uri, data, fmt="chr"):
    return S.Results(S.CmdID(str(cmd_id)), S.MsgRef(str(msg_ref)), S.CmdRef(str(cmd_ref)),
                     S.Item(S.Source(S.LocURI(uri)), S.Meta(M.Format(fmt)), S.Data(data)))


def md5_cred(name, secret, nonce_b64):
    """syncml:auth-md5 as the device computes it from its APPSRV secret and the server's nonce."""
    inner = base64.b64encode(hashlib.md5(f"{name}:{secret}".encode()).digest())
    return base64.b64encode(hashlib.md5(inner + b":" + base64.b64decode(nonce_b64)).digest()).decode()


def appsrv_digest(name, secret):
    return base64.b64encode(hashlib.md5(f"{name}:{secret}".encode()).digest()).decode()


@dataclass
class Reply:
    root: etree._Element
    msg_id: str
    target: str
    statuses: list = field(default_factory=list)  # (cmd_id, msg_ref, cmd_ref, cmd, code)
    commands: list = field(default_factory=list)  # (name, cmd_id, target, format, data)
    alerts: list = field(default_factory=list)
    final: bool = False
    chal_nonce: str = ""

    @property
    def header_status(self):
        return self.statuses[0]

    def status_for(self, cmd_ref):
        return next(s for s in self.statuses if s[2] == str(cmd_ref))


def read(content):
    root = etree.fromstring(content)
    hdr = root.find("s:SyncHdr", NSMAP)
    reply = Reply(root, hdr.findtext("s:MsgID", namespaces=NSMAP), hdr.findtext("s:Target/s:LocURI", namespaces=NSMAP))
    for element in root.find("s:SyncBody", NSMAP):
        name = etree.QName(element).localname
        text = lambda path: element.findtext(path, namespaces=NSMAP) or ""  # noqa: E731
        if name == "Status":
            reply.statuses.append((text("s:CmdID"), text("s:MsgRef"), text("s:CmdRef"), text("s:Cmd"), text("s:Data")))
            reply.chal_nonce = reply.chal_nonce or text("s:Chal/s:Meta/m:NextNonce")
        elif name == "Alert":
            reply.alerts.append(text("s:Data"))
        elif name == "Final":
            reply.final = True
        else:
            reply.commands.append((name, text("s:CmdID"), text("s:Item/s:Target/s:LocURI"),
                                   text("s:Item/s:Meta/m:Format"), text("s:Item/s:Data")))
    return reply
