"""Device inventory over OMA-DM (DevInfo, DevDetail and DeviceStatus CSPs).

At the first session and then every ENROLLMENT_INVENTORY_INTERVAL_HOURS, a Get per node below is
queued (source "inventory"); the Results are written to the Device as they come back. Package 1's
Replace of ./DevInfo nodes feeds the same fields for free.

Apps built on this one (Autopilot), which enrollment must not import, add readers with
register_reader(): at the device's first inventory they may ask for some of these nodes to be read
before anything else of the session, and they are told the values the server reads for the first time
for a device in the message that brings them, early enough to queue commands for the same session's
next reply.
"""
from datetime import timedelta

from django.conf import settings

from enrollment.models import Device

from .models import DeviceCommand

SOURCE = "inventory"

# LocURI -> Device field ("" = kept in Device.inventory only).
NODES = {
    "./DevInfo/DevId": "",
    "./DevInfo/Man": "manufacturer",
    "./DevInfo/Mod": "model",
    "./DevInfo/DmV": "",
    "./DevInfo/Lang": "",
    "./DevDetail/SwV": "os_version",
    "./DevDetail/OEM": "",
    "./DevDetail/HwV": "",
    "./DevDetail/FwV": "",
    "./DevDetail/DevTyp": "",
    "./DevDetail/Ext/Microsoft/DeviceName": "name",
    "./DevDetail/Ext/Microsoft/DNSComputerName": "",
    "./DevDetail/Ext/Microsoft/OSPlatform": "os_platform",
    "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": "serial_number",
    "./DevDetail/Ext/Microsoft/ProcessorArchitecture": "architecture",
    "./DevDetail/Ext/Microsoft/TotalRAM": "total_ram_mb",
    "./DevDetail/Ext/DeviceHardwareData": "hardware_data",
    "./Vendor/MSFT/DeviceStatus/OS/Edition": "os_edition",
}

# SYSTEM_INFO.wProcessorArchitecture values that ProcessorArchitecture reports.
ARCHITECTURES = {"0": "x86", "5": "ARM", "6": "IA64", "9": "x64", "12": "ARM64"}

MAX_VALUE = 16 * 1024  # DeviceHardwareData is a few KB of base64; anything larger is not kept


_readers = []


def register_reader(first, received):
    """`first(device)` -> LocURIs of NODES to send as the first commands of the device's first inventory
    (empty when there is nothing to recognise it by); `received(device, values, now)` is called with
    {LocURI: value} of the nodes read for the first time for the device, once they are written to it."""
    if (first, received) not in _readers:
        _readers.append((first, received))


def first_reads(device, gets):
    """Of the inventory Gets `gets` just created, those to send before the rest of the queue, in order:
    only at the device's first inventory, and only the nodes a reader asked for."""
    if device.inventory_requested_at is not None or not _readers:
        return []
    wanted = [uri for first, _ in _readers for uri in first(device) if uri in NODES]
    by_target = {get.target: get for get in gets}
    return [by_target[uri] for uri in dict.fromkeys(wanted) if uri in by_target]


def new_values(device, values):
    """{LocURI: value} of `values` the device's inventory has no value for yet (call before apply)."""
    return {uri: value.strip()[:MAX_VALUE] for uri, value in values.items()
            if uri in NODES and value.strip() and uri not in device.inventory}


def notify(device, values, now):
    for _, received in _readers:
        received(device, values, now)


def due(device, now):
    interval = timedelta(hours=settings.ENROLLMENT_INVENTORY_INTERVAL_HOURS)
    return device.inventory_requested_at is None or device.inventory_requested_at <= now - interval


def gets(device, now):
    """Unsaved Get commands for every inventory node (the caller bulk-creates them)."""
    expires = now + timedelta(hours=settings.ENROLLMENT_INVENTORY_INTERVAL_HOURS)
    return [DeviceCommand(device=device, verb=DeviceCommand.Verb.GET, target=target, source=SOURCE,
                          created_at=now, expires_at=expires) for target in NODES]


def apply(device, values, now):
    """Write {LocURI: value} into the device's inventory; returns the changed field names."""
    known = {uri: value.strip()[:MAX_VALUE] for uri, value in values.items() if uri in NODES}
    if not known:
        return []
    # Only what changed is written (with the time of the reading): Windows reports the same ./DevInfo
    # nodes at every session.
    changed = {"inventory_at"}
    device.inventory_at = now
    inventory = {**device.inventory, **known}
    if inventory != device.inventory:
        device.inventory = inventory
        changed.add("inventory")
    for uri, value in known.items():
        field = NODES[uri]
        if not field or not value:
            continue
        converted = _convert(field, value)
        if converted is None:
            continue
        if field in ("name", "os_version", "manufacturer", "model", "serial_number", "os_platform"):
            converted = converted[:Device._meta.get_field(field).max_length]
        if getattr(device, field) != converted:
            setattr(device, field, converted)
            changed.add(field)
    kind = recognise_kind(device)
    if kind != device.kind:
        device.kind = kind
        changed.add("kind")
    return sorted(changed)


def _convert(field, value):
    if field in ("total_ram_mb", "os_edition"):
        return int(value) if value.isdigit() and len(value) < 10 else None
    if field == "architecture":
        return ARCHITECTURES.get(value, value[:32])
    return value


def recognise_kind(device):
    """HoloLens 2 from its model, platform or Holographic edition (DevInfo CSP Mod, DevDetail CSP
    Ext/Microsoft/OSPlatform, GetProductInfo)."""
    if "hololens" in device.model.lower() or "holographic" in device.os_platform.lower():
        return Device.Kind.HOLOLENS
    if device.os_edition == Device.HOLOGRAPHIC_EDITION:
        return Device.Kind.HOLOLENS
    return device.kind
