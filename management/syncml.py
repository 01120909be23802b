"""SyncML 1.2 (OMA-DM) messages as Windows sends and expects them (OMA DM 1.2 RepPro, MS-MDM).

Parses SyncML 1.1 and 1.2 into plain data with lxml and writes 1.2 replies as text. Protocol only: who the
device is and what to send it are decided elsewhere.
"""
import re
from dataclasses import dataclass, field

from lxml import etree

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


# Our replies are written as text: a handful of fixed elements around the values, which the
# builders escape (XML 1.0 section 2.4, "Character Data and Markup") after refusing the characters
# XML 1.0 cannot carry (section 2.2, "Characters"), as lxml did. The SyncML 1.2 namespace is the
# document's default one; the meta-information elements (Format, Type, NextNonce) carry their own.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_MET = f' xmlns="{METINF}"'


def _x(value):
    text = str(value)
    if _INVALID_XML.search(text):
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters")
    return text.translate(_ESCAPES)


def _status(cmd_id, status):
    chal = ""
    if status.chal_nonce:
        chal = (f'<Chal><Meta><Format{_MET}>b64</Format><Type{_MET}>syncml:auth-md5</Type>'
                f'<NextNonce{_MET}>{_x(status.chal_nonce)}</NextNonce></Meta></Chal>')
    return (f"<Status><CmdID>{cmd_id}</CmdID><MsgRef>{_x(status.msg_ref)}</MsgRef><CmdRef>{_x(status.cmd_ref)}</CmdRef>"
            f"<Cmd>{_x(status.cmd)}</Cmd>{chal}<Data>{_x(status.code)}</Data></Status>")


def _outgoing(cmd_id, command):
    if command.verb not in SERVER_COMMANDS:
        raise ValueError(f"unknown verb {command.verb}")
    item = f"<Target><LocURI>{_x(command.target)}</LocURI></Target>"
    if command.verb != "Get":
        meta = ""
        if command.format:
            meta += f"<Format{_MET}>{_x(command.format)}</Format>"
        if command.type:
            meta += f"<Type{_MET}>{_x(command.type)}</Type>"
        if meta:
            item += f"<Meta>{meta}</Meta>"
        if command.verb != "Delete":
            item += f"<Data>{_x(command.data)}</Data>"
    return f"<{command.verb}><CmdID>{cmd_id}</CmdID><Item>{item}</Item></{command.verb}>"


def build(*, request_header, msg_id, server_url, statuses, commands=(), alerts=(), final=True):
    """Our reply: SyncHdr, Statuses first (SyncHdr's as CmdID 1), then Alerts (codes, e.g. 1222
    "next message"), then commands, then Final. `commands` are Outgoing or anything with the same
    attributes (a DeviceCommand).

    Returns (bytes, {cmd_id: command}) so the caller can match the device's Statuses later."""
    parts = [f"<?xml version='1.0' encoding='utf-8'?>\n<SyncML xmlns=\"{NS_12}\"><SyncHdr><VerDTD>1.2</VerDTD>"
             f"<VerProto>DM/1.2</VerProto><SessionID>{_x(request_header.session_id)}</SessionID>"
             f"<MsgID>{_x(msg_id)}</MsgID><Target><LocURI>{_x(request_header.source)}</LocURI></Target>"
             f"<Source><LocURI>{_x(server_url)}</LocURI></Source></SyncHdr><SyncBody>"]
    sent = {}
    cmd_id = 1
    for status in statuses:
        parts.append(_status(cmd_id, status))
        cmd_id += 1
    for code in alerts:
        parts.append(f"<Alert><CmdID>{cmd_id}</CmdID><Data>{_x(code)}</Data></Alert>")
        cmd_id += 1
    for command in commands:
        parts.append(_outgoing(cmd_id, command))
        sent[str(cmd_id)] = command
        cmd_id += 1
    if final:
        parts.append("<Final/>")
    parts.append("</SyncBody></SyncML>")
    return "".join(parts).encode("utf-8"), sent
