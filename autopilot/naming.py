"""Device-name templates of Autopilot profiles (`CORP-%SERIAL%`, `LAB-%RAND:4%`).

Windows computer names are NetBIOS names: at most 15 characters, letters, digits and hyphens, never
only digits. %SERIAL% is replaced by the serial number, which Windows cuts to what fits in 15
characters; %RAND:x% by x random digits.
"""
import re
import secrets

from django.utils.translation import gettext as _

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
                raise ValueError(_("%RAND:x% needs at least one digit (x from 1 to 14)."))
            rand_digits += digits
            rand_count += 1
        else:
            raise ValueError(_("Unknown macro %{macro}%: use %SERIAL% or %RAND:x%.").format(macro=macro))
    if serials > 1 or rand_count > 1:
        raise ValueError(_("Use %SERIAL% and %RAND:x% at most once each."))
    fixed = MACRO_RE.sub("", template)
    if "%" in fixed:
        raise ValueError(_("A % sign must open a macro: %SERIAL% or %RAND:x%."))
    return fixed, bool(serials), rand_digits


def template_error(template):
    """A clear message for what is wrong with the template, or None."""
    if not template:
        return None
    if " " in template:
        return _("Device names cannot contain spaces.")
    try:
        fixed, serial, rand_digits = _parts(template)
    except ValueError as exc:
        return str(exc)
    if not ALLOWED.match(fixed):
        bad = "".join(sorted({c for c in fixed if not ALLOWED.match(c)}))
        return _("Device names may contain only letters, digits and hyphens, not {bad}.").format(bad=repr(bad))
    length = len(fixed) + rand_digits
    if length > MAX_LENGTH:
        return _("The name is {length} characters once expanded; Windows allows {maximum}.").format(
            length=length, maximum=MAX_LENGTH)
    if serial and length >= MAX_LENGTH:
        return _("%SERIAL% needs room: the rest of the name takes {length} of the {maximum} characters.").format(
            length=length, maximum=MAX_LENGTH)
    if not serial and (fixed.isdigit() or not fixed):
        return _("A device name cannot be only digits: add a letter or a hyphen.")
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
