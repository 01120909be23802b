"""SyncML 1.2 (OMA-DM) messages as Windows sends and expects them (OMA DM 1.2 RepPro, MS-MDM).

Parses SyncML 1.1 and 1.2 into plain data and builds 1.2 replies with lxml. Protocol only: who the
device is and what to send it are decided elsewhere.
"""
from dataclasses import dataclass, field

from lxml import etree
from lxml.builder import ElementMaker

NS_12 = "SYNCML:SYNCML1.2"
NS_11 = "SYNCML:SYNCML1.1"
METINF = "syncml:metinf"
CONTENT_TYPE = "application/vnd.syncml.dm+xml"
MAX_BODY = 2 * 1024 * 1024
MAX_COMMANDS = 500
# Elements per message: a full package of MAX_COMMANDS commands is a few thousand; the cap keeps the
# per-element work below (xml-formatted Data is serialised child by child) bounded.
MAX_ELEMENTS = 20_000

# Commands the client sends us, and those we send (OMA DM 1.2 RepPro, MS-MDM).
CLIENT_COMMANDS = {"Alert", "Replace", "Status", "Results", "Add", "Get", "Delete", "Exec", "Atomic", "Sequence"}
SERVER_COMMANDS = {"Get", "Replace", "Add", "Delete", "Exec"}
FORMATS = {"chr", "int", "bool", "b64", "xml", "node", "null", "bin", "float", "date", "time"}

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False,
                         huge_tree=False, remove_blank_text=True)


class SyncMLError(ValueError):
    """The body is not a SyncML message we can answer."""


@dataclass
class Item:
    target: str = ""
    source: str = ""
    format: str = ""
    type: str = ""
    data: str = ""


@dataclass
class Command:
    name: str
    cmd_id: str = ""
    items: list = field(default_factory=list)
    data: str = ""  # Alert code, Status code
    msg_ref: str = ""
    cmd_ref: str = ""
    cmd: str = ""  # the command a Status answers
    meta_type: str = ""
    children: list = field(default_factory=list)  # Atomic / Sequence


@dataclass
class Header:
    ver_dtd: str
    ver_proto: str
    session_id: str
    msg_id: str
    target: str
    source: str
    cred_format: str = ""
    cred_type: str = ""
    cred_data: str = ""


@dataclass
class Message:
    header: Header
    commands: list
    final: bool
    namespace: str = NS_12

    @property
    def alerts(self):
        return [c for c in self.commands if c.name == "Alert"]


def _text(element, path, ns):
    found = element.find(path, ns)
    return (found.text or "").strip() if found is not None else ""


def _first_children(element):
    """{tag: the first child element with that tag}: the single-level look-ups of a command or an item
    in one pass over its children, instead of one find() each."""
    found = {}
    for child in element:
        tag = child.tag
        if tag not in found and isinstance(tag, str):
            found[tag] = child
    return found


def _child_text(children, tag):
    found = children.get(tag)
    return (found.text or "").strip() if found is not None else ""


class _Tags:
    """The Clark names of the elements looked up, for one SyncML namespace."""

    def __init__(self, ns):
        for name in ("CmdID", "Data", "MsgRef", "CmdRef", "Cmd", "Meta", "Item", "Target", "Source"):
            setattr(self, name, f"{{{ns}}}{name}")


_TAGS = {NS_12: _Tags(NS_12), NS_11: _Tags(NS_11)}


def _item(element, ns):
    tags, children = _TAGS[ns["s"]], _first_children(element)
    # Two-level paths through find() (its semantics: the first match under any such child), only when
    # the first level is there at all.
    has_meta = tags.Meta in children
    return Item(
        target=_text(element, "s:Target/s:LocURI", ns) if tags.Target in children else "",
        source=_text(element, "s:Source/s:LocURI", ns) if tags.Source in children else "",
        format=_text(element, "s:Meta/m:Format", ns) if has_meta else "",
        type=_text(element, "s:Meta/m:Type", ns) if has_meta else "",
        data=_data(children.get(tags.Data)),
    )


def _data(element):
    if element is None:
        return ""
    if len(element):  # xml-formatted data arrives as child elements
        return "".join(etree.tostring(child, encoding="unicode") for child in element).strip()
    return (element.text or "").strip()


def _command(element, ns, depth=0):
    name = etree.QName(element).localname
    tags, children = _TAGS[ns["s"]], _first_children(element)
    command = Command(
        name=name,
        cmd_id=_child_text(children, tags.CmdID),
        data=_data(children.get(tags.Data)),
        msg_ref=_child_text(children, tags.MsgRef),
        cmd_ref=_child_text(children, tags.CmdRef),
        cmd=_child_text(children, tags.Cmd),
        meta_type=_text(element, "s:Meta/m:Type", ns) if tags.Meta in children else "",
        items=[_item(i, ns) for i in element.iterchildren(tags.Item)] if tags.Item in children else [],
    )
    if name not in CLIENT_COMMANDS:
        return Command(name=name, cmd_id=command.cmd_id)
    if name in ("Atomic", "Sequence"):
        if depth:
            raise SyncMLError("nested Atomic/Sequence")
        command.children = [_command(child, ns, depth + 1) for child in element
                            if isinstance(child.tag, str) and etree.QName(child).localname in CLIENT_COMMANDS]
    return command


def parse(body):
    """Parse a SyncML 1.1 or 1.2 message. Raises SyncMLError for anything else."""
    if len(body) > MAX_BODY:
        raise SyncMLError("message too large")
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise SyncMLError("DTDs and entities are not accepted")
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise SyncMLError(f"malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        # The byte check above cannot see a DOCTYPE written in UTF-16.
        raise SyncMLError("DTDs and entities are not accepted")
    if sum(1 for _ in root.iter()) > MAX_ELEMENTS:
        raise SyncMLError("too many elements")
    qname = etree.QName(root)
    if qname.localname != "SyncML" or qname.namespace not in (NS_12, NS_11):
        raise SyncMLError("not a SyncML 1.1/1.2 message")
    ns = {"s": qname.namespace, "m": METINF}
    hdr = root.find("s:SyncHdr", ns)
    body_el = root.find("s:SyncBody", ns)
    if hdr is None or body_el is None:
        raise SyncMLError("SyncHdr or SyncBody missing")
    header = Header(
        ver_dtd=_text(hdr, "s:VerDTD", ns),
        ver_proto=_text(hdr, "s:VerProto", ns),
        session_id=_text(hdr, "s:SessionID", ns),
        msg_id=_text(hdr, "s:MsgID", ns),
        target=_text(hdr, "s:Target/s:LocURI", ns),
        source=_text(hdr, "s:Source/s:LocURI", ns),
        cred_format=_text(hdr, "s:Cred/s:Meta/m:Format", ns),
        cred_type=_text(hdr, "s:Cred/s:Meta/m:Type", ns),
        cred_data=_text(hdr, "s:Cred/s:Data", ns),
    )
    if not header.session_id or not header.msg_id.isdigit() or not header.source:
        raise SyncMLError("SyncHdr needs SessionID, a numeric MsgID and a Source")
    children = [child for child in body_el if isinstance(child.tag, str) and etree.QName(child).localname != "Final"]
    if len(children) > MAX_COMMANDS:
        raise SyncMLError("too many commands")
    # Unknown elements are kept (as a Command with only a name and CmdID) so that they get a Status.
    commands = [_command(child, ns) for child in children]
    if len(commands) > MAX_COMMANDS:
        raise SyncMLError("too many commands")
    final = body_el.find("s:Final", ns) is not None
    return Message(header=header, commands=commands, final=final, namespace=qname.namespace)


S = ElementMaker(namespace=NS_12, nsmap={None: NS_12})
M = ElementMaker(namespace=METINF, nsmap={None: METINF})


@dataclass
class Status:
    """Our Status for one of the client's commands (or its SyncHdr, CmdRef 0)."""

    msg_ref: str
    cmd_ref: str
    cmd: str
    code: int
    chal_nonce: str = ""  # the SyncHdr's Chal: the nonce the device's next digest is made with


@dataclass
class Outgoing:
    """A command we send: Get/Replace/Add/Delete/Exec on one LocURI."""

    verb: str
    target: str
    format: str = ""
    data: str = ""
    type: str = ""


def _status(cmd_id, status):
    children = [S.CmdID(str(cmd_id)), S.MsgRef(status.msg_ref), S.CmdRef(status.cmd_ref), S.Cmd(status.cmd)]
    if status.chal_nonce:
        children.append(S.Chal(S.Meta(M.Format("b64"), M.Type("syncml:auth-md5"), M.NextNonce(status.chal_nonce))))
    children.append(S.Data(str(status.code)))
    return S.Status(*children)


def _outgoing(cmd_id, command):
    if command.verb not in SERVER_COMMANDS:
        raise ValueError(f"unknown verb {command.verb}")
    item = [S.Target(S.LocURI(command.target))]
    if command.verb != "Get":
        meta = []
        if command.format:
            meta.append(M.Format(command.format))
        if command.type:
            meta.append(M.Type(command.type))
        if meta:
            item.append(S.Meta(*meta))
        if command.verb != "Delete":
            item.append(S.Data(command.data))
    return getattr(S, command.verb)(S.CmdID(str(cmd_id)), S.Item(*item))


def build(*, request_header, msg_id, server_url, statuses, commands=(), alerts=(), final=True):
    """Our reply: SyncHdr, Statuses first (SyncHdr's as CmdID 1), then Alerts (codes, e.g. 1222
    "next message"), then commands, then Final. `commands` are Outgoing or anything with the same
    attributes (a DeviceCommand).

    Returns (bytes, {cmd_id: command}) so the caller can match the device's Statuses later."""
    header = S.SyncHdr(
        S.VerDTD("1.2"), S.VerProto("DM/1.2"), S.SessionID(request_header.session_id), S.MsgID(str(msg_id)),
        S.Target(S.LocURI(request_header.source)), S.Source(S.LocURI(server_url)),
    )
    body = []
    sent = {}
    cmd_id = 1
    for status in statuses:
        body.append(_status(cmd_id, status))
        cmd_id += 1
    for code in alerts:
        body.append(S.Alert(S.CmdID(str(cmd_id)), S.Data(str(code))))
        cmd_id += 1
    for command in commands:
        body.append(_outgoing(cmd_id, command))
        sent[str(cmd_id)] = command
        cmd_id += 1
    if final:
        body.append(S.Final())
    document = S.SyncML(header, S.SyncBody(*body))
    return etree.tostring(document, xml_declaration=True, encoding="utf-8"), sent
