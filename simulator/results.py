"""What a run of the simulator returns: the enrollment, a renewal, an OMA-DM check-in."""
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from .certificates import thumbprint
from .provisioning import Provisioning
from .soap import OSEDITION_HOLOLENS, Discovery, Policy


@dataclass
class RenewalResult:
    previous: x509.Certificate
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    enrollment: "EnrollmentResult"  # the enrollment as it stands now: new certificate and key
    seconds: float

    def as_dict(self):
        return {
            "ok": True,
            "previous_serial": format(self.previous.serial_number, "X"),
            "serial": format(self.certificate.serial_number, "X"),
            "thumbprint": thumbprint(self.certificate),
            "subject": self.certificate.subject.rfc4514_string(),
            "not_after": self.certificate.not_valid_after_utc.isoformat(),
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class EnrollmentResult:
    discovery_url: str
    device_id: str
    hw_dev_id: str
    device_name: str
    os_edition: str
    enrollment_type: str
    discovery: Discovery
    policy: Policy
    provisioning: Provisioning
    private_key: rsa.RSAPrivateKey
    provisioning_document: etree._ElementTree
    responses: dict
    steps: list = field(default_factory=list)

    @property
    def certificate(self):
        return self.provisioning.certificate

    @property
    def kind(self):
        return "HoloLens 2" if self.os_edition == OSEDITION_HOLOLENS else "Windows PC"

    @property
    def total_seconds(self):
        return sum(step.seconds for step in self.steps)

    def as_dict(self):
        cert = self.certificate
        return {
            "ok": True,
            "discovery_url": self.discovery_url,
            "auth_policy": self.discovery.auth_policy,
            "enrollment_version": self.discovery.enrollment_version,
            "enrollment_type": self.enrollment_type,
            "device_id": self.device_id,
            "hw_dev_id": self.hw_dev_id,
            "device_name": self.device_name,
            "kind": self.kind,
            "os_edition": self.os_edition,
            "certificate": {
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format(cert.serial_number, "X"),
                "thumbprint": thumbprint(cert),
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
            },
            "enrollment_url": self.discovery.enrollment_url,
            "management_url": self.provisioning.management_url,
            "provider_id": self.provisioning.provider_id,
            "steps": [{"name": s.name, "seconds": round(s.seconds, 4), "detail": s.detail} for s in self.steps],
            "total_seconds": round(self.total_seconds, 4),
        }


@dataclass
class ServerMessage:
    """One reply of the server, as the simulated device read it."""

    msg_id: int
    header_code: str
    statuses: list  # (CmdRef, Cmd, code) for our commands
    commands: list  # (verb, CmdID, LocURI, Format, Data)
    answers: list = field(default_factory=list)  # our Status code per command, same order

    def describe(self):
        received = ", ".join(f"{verb} {target}" for verb, _, target, _, _ in self.commands) or "no command (session ends)"
        return f"message {self.msg_id}: SyncHdr {self.header_code}; {received}"


@dataclass
class CheckinResult:
    session_id: str
    auth: str
    messages: list
    wbxml_refused: str | None = None  # with Simulator(wbxml=True): the Accept of the server's 415


    @property
    def commands(self):
        return [command for message in self.messages for command in message.commands]

    def as_dict(self):
        data = {
            "ok": True, "session_id": self.session_id, "auth": self.auth,
            "messages": [{"msg_id": m.msg_id, "header_status": m.header_code,
                          "commands": [{"verb": v, "cmd_id": c, "target": t, "format": f, "data": d, "answer": a}
                                       for (v, c, t, f, d), a in zip(m.commands, m.answers)]}
                         for m in self.messages],
        }
        if self.wbxml_refused is not None:
            data["wbxml_refused"] = self.wbxml_refused
        return data
