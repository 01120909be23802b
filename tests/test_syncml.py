from pathlib import Path

import pytest
from lxml import etree

from management import syncml

FIXTURES = Path(__file__).parent / "fixtures" / "syncml"


def package1():
    return (FIXTURES / "package1.xml").read_bytes()


def test_package_one_from_a_windows_client_is_parsed():
    message = syncml.parse(package1())

    assert message.header.source == "1E08C6E95D8BB843B1278FF45BC60CC6"
    assert (message.header.session_id, message.header.msg_id) == ("1", "1")
    assert [(c.name, c.cmd_id) for c in message.commands] == [("Alert", "2"), ("Alert", "3"), ("Replace", "4")]
    login = message.commands[1]
    assert (login.data, login.items[0].type, login.items[0].data) == ("1224", "com.microsoft/MDM/LoginStatus", "user")
    assert message.commands[2].items[2].source == "./DevInfo/Mod"
    assert message.final


def test_syncml_1_1_namespace_is_accepted():
    message = syncml.parse(package1().replace(b"SYNCML1.2", b"SYNCML1.1"))
    assert message.namespace == syncml.NS_11


@pytest.mark.parametrize("body", [
    b"",
    b"<SyncML",
    b"<foo xmlns='SYNCML:SYNCML1.2'/>",
    b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncBody/></SyncML>",
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><SyncML xmlns='SYNCML:SYNCML1.2'/>",
    b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><SessionID>1</SessionID><MsgID>x</MsgID>"
    b"<Source><LocURI>d</LocURI></Source></SyncHdr><SyncBody/></SyncML>",
])
def test_malformed_messages_raise_syncml_error(body):
    with pytest.raises(syncml.SyncMLError):
        syncml.parse(body)


def test_nested_atomic_is_refused():
    body = package1().replace(b"<Final/>", b"<Atomic><CmdID>9</CmdID><Atomic><CmdID>10</CmdID></Atomic></Atomic><Final/>")
    with pytest.raises(syncml.SyncMLError):
        syncml.parse(body)


def test_reply_puts_header_status_first_then_commands_and_final():
    request = syncml.parse(package1())
    body, sent = syncml.build(
        request_header=request.header, msg_id=1, server_url="https://mdm.example.com/ManagementServer/MDM.svc",
        statuses=[syncml.Status("1", "0", "SyncHdr", 200), syncml.Status("1", "2", "Alert", 200)],
        commands=[syncml.Outgoing("Get", "./DevDetail/SwV"),
                  syncml.Outgoing("Replace", "./Vendor/MSFT/TenantLockdown/RequireNetworkInOOBE", "bool", "true"),
                  syncml.Outgoing("Exec", "./Device/Vendor/MSFT/Reboot/RebootNow", "null", "")],
    )

    root = etree.fromstring(body)
    ns = {"s": syncml.NS_12, "m": syncml.METINF}
    assert root.findtext("s:SyncHdr/s:Target/s:LocURI", namespaces=ns) == request.header.source
    names = [etree.QName(e).localname for e in root.find("s:SyncBody", ns)]
    assert names == ["Status", "Status", "Get", "Replace", "Exec", "Final"]
    cmd_ids = root.xpath("//s:CmdID/text()", namespaces=ns)
    assert cmd_ids == ["1", "2", "3", "4", "5"]
    assert set(sent) == {"3", "4", "5"}
    assert root.findtext("s:SyncBody/s:Replace/s:Item/s:Meta/m:Format", namespaces=ns) == "bool"


def test_data_is_entity_escaped_not_cdata():
    request = syncml.parse(package1())
    body, _ = syncml.build(request_header=request.header, msg_id=2, server_url="https://x/", statuses=[],
                           commands=[syncml.Outgoing("Replace", "./Device/Vendor/MSFT/X", "chr", "a<b&c")])
    assert b"a&lt;b&amp;c" in body and b"CDATA" not in body


def test_reply_values_are_escaped_and_characters_xml_cannot_carry_are_refused():
    header = syncml.Header("1.2", "DM/1.2", "5 & <6>", "1", "https://x/MDM.svc", "DEV\"'<&>É😀")
    odd = "<a>1</a> & \r\n é"
    reply, _ = syncml.build(request_header=header, msg_id=7, server_url="https://x/MDM.svc?a=1&b=2", statuses=[
        syncml.Status("1", "0", "SyncHdr", 401, chal_nonce="abc+/==")], commands=[
        syncml.Outgoing("Replace", "./Vendor/A&B", "chr", odd, "text/plain")])
    root = etree.fromstring(reply)
    ns = {"s": syncml.NS_12, "m": syncml.METINF}
    assert root.findtext("s:SyncHdr/s:SessionID", namespaces=ns) == "5 & <6>"
    assert root.findtext("s:SyncHdr/s:Target/s:LocURI", namespaces=ns) == "DEV\"'<&>É😀"
    assert root.findtext("s:SyncHdr/s:Source/s:LocURI", namespaces=ns) == "https://x/MDM.svc?a=1&b=2"
    assert root.findtext("s:SyncBody/s:Status/s:Chal/s:Meta/m:NextNonce", namespaces=ns) == "abc+/=="
    assert root.findtext("s:SyncBody/s:Replace/s:Item/s:Data", namespaces=ns) == odd  # the \r kept as &#13;
    assert root.findtext("s:SyncBody/s:Replace/s:Item/s:Meta/m:Type", namespaces=ns) == "text/plain"
    for bad in ("\x00", "\x08", "\x1f", "\ud800", "\ufffe"):
        with pytest.raises(ValueError):
            syncml.build(request_header=header, msg_id=1, server_url="u", statuses=[], commands=[
                syncml.Outgoing("Replace", "./X", "chr", "a" + bad)])
