"""What a failed step or a broken answer raises, for every part of the simulator."""


class SimulatorError(Exception):
    """A step failed or an answer broke the protocol. `check` names the failed check."""

    def __init__(self, check, message):
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


class SoapFaultError(SimulatorError):
    """The server answered with a SOAP fault (MS-MDE2 2.2.10)."""

    def __init__(self, check, *, code, subcode, reason, error_type=None):
        detail = f" ({error_type})" if error_type else ""
        super().__init__(check, f"SOAP fault {subcode or code}{detail}: {reason}")
        self.code, self.subcode, self.reason, self.error_type = code, subcode, reason, error_type
