"""Device-name templates of Autopilot profiles (`CORP-%SERIAL%`, `LAB-%RAND:4%`).

Windows computer names are NetBIOS names: at most 15 characters, letters, digits and hyphens, never
only digits. %SERIAL% is replaced by the serial number, which Windows cuts to what fits in 15
characters; %RAND:x% by x random digits.
"""
import re
import secrets

MAX_LENGTH = 15
MACRO_RE = re.compile(r"%([^%]*)%")
RAND_RE = re.compile(r"^RAND:(\d{1,2})$")
ALLOWED = re.compile(r"^[A-Za-z0-9-]*$")


def _parts(template):
    """(fixed text, has %SERIAL%, total %RAND% digits) or raise ValueError with the reason."""
    serials, rand_digits, rand_count = 0, 0, 0
    for macro in MACRO_RE.findall(template):
        upper = macro.upper()
        if upper == "SERIAL":
            serials += 1
        elif RAND_RE.match(upper):
            digits = int(RAND_RE.match(upper).group(1))
            if digits < 1:
                raise ValueError("%RAND:x% needs at least one digit (x from 1 to 14).")
            rand_digits += digits
            rand_count += 1
        else:
            raise ValueError(f"Unknown macro %{macro}%: use %SERIAL% or %RAND:x%.")
    if serials > 1 or rand_count > 1:
        raise ValueError("Use %SERIAL% and %RAND:x% at most once each.")
    fixed = MACRO_RE.sub("", template)
    if "%" in fixed:
        raise ValueError("A % sign must open a macro: %SERIAL% or %RAND:x%.")
    return fixed, bool(serials), rand_digits


def template_error(template):
    """A clear message for what is wrong with the template, or None."""
    if not template:
        return None
    if " " in template:
        return "Device names cannot contain spaces."
    try:
        fixed, serial, rand_digits = _parts(template)
    except ValueError as exc:
        return str(exc)
    if not ALLOWED.match(fixed):
        bad = "".join(sorted({c for c in fixed if not ALLOWED.match(c)}))
        return f"Device names may contain only letters, digits and hyphens, not {bad!r}."
    length = len(fixed) + rand_digits
    if length > MAX_LENGTH:
        return f"The name is {length} characters once expanded; Windows allows {MAX_LENGTH}."
    if serial and length >= MAX_LENGTH:
        return f"%SERIAL% needs room: the rest of the name takes {length} of the {MAX_LENGTH} characters."
    if not serial and (fixed.isdigit() or not fixed):
        return "A device name cannot be only digits: add a letter or a hyphen."
    return None


def expand(template, serial_number, *, rand=None):
    """The name Windows would give a device (for previews and tests). `rand(n)` gives n digits."""
    rand = rand or (lambda n: "".join(str(secrets.randbelow(10)) for _ in range(n)))
    fixed, _, rand_digits = _parts(template)
    room = MAX_LENGTH - len(fixed) - rand_digits
    clean_serial = re.sub(r"[^A-Za-z0-9-]", "", serial_number)[:max(room, 0)]

    def replace(match):
        macro = match.group(1).upper()
        if macro == "SERIAL":
            return clean_serial
        return rand(int(RAND_RE.match(macro).group(1)))

    return MACRO_RE.sub(replace, template)
