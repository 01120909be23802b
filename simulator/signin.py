"""The web pages of an enrollment, as Windows' web-auth broker shows them: the federated sign-in page
(MS-MDE2 3.2) and, with an Entra ID token, the terms-of-use page (Microsoft Entra integration with MDM)."""
import base64
import binascii
import json
import urllib.parse

import lxml.html
from lxml import etree

from .errors import SimulatorError
from .transport import _page_text

# The value Windows' web-auth broker passes as appru (MS-MDE2 3.2: an ms-app:// id).
APPRU = "ms-app://windows.immersivecontrolpanel"
# Where Windows waits for the terms-of-use answer, and the web view's host header (Entra integration with MDM).
TERMS_REDIRECT_URI = "ms-aadj-redir://auth/mdm"


# --- federated sign-in (MS-MDE2 3.2) --------------------------------------------------------------

def sign_in_url(authentication_url, email):
    """AuthenticationServiceUrl with appru and login_hint added, its own query string kept."""
    parts = urllib.parse.urlsplit(authentication_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [("appru", APPRU), ("login_hint", email)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))


def _forms(html, url, check):
    try:
        document = lxml.html.document_fromstring(html, base_url=url)
    except (etree.ParserError, ValueError) as exc:
        raise SimulatorError(check, f"the page is not HTML ({exc})") from None
    return document, document.forms


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def form_post_headers(page_url, action, referrer_policy=None):
    """Origin and Referer as the broker's browser engine sends them when the page posts its form
    (Fetch standard, "append a request Origin header"; Referrer Policy). Django's CSRF check reads
    them, so a page whose own Referrer-Policy makes the browser send `Origin: null` fails here as it
    would on a device."""
    known = {"no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
             "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"}
    tokens = [t.strip().lower() for t in (referrer_policy or "").split(",") if t.strip().lower() in known]
    policy = tokens[-1] if tokens else "strict-origin-when-cross-origin"
    same_origin = _origin(page_url) == _origin(action)
    downgrade = page_url.startswith("https:") and not action.startswith("https:")
    origin = _origin(page_url)
    if policy == "no-referrer" or (policy == "same-origin" and not same_origin):
        origin_header = "null"
    elif downgrade and policy in ("no-referrer-when-downgrade", "strict-origin", "strict-origin-when-cross-origin"):
        origin_header = "null"
    else:
        origin_header = origin
    full = urllib.parse.urldefrag(page_url)[0]
    referer = {
        "no-referrer": None,
        "no-referrer-when-downgrade": None if downgrade else full,
        "same-origin": full if same_origin else None,
        "origin": origin + "/",
        "strict-origin": None if downgrade else origin + "/",
        "origin-when-cross-origin": full if same_origin else origin + "/",
        "strict-origin-when-cross-origin": full if same_origin else (None if downgrade else origin + "/"),
        "unsafe-url": full,
    }[policy]
    headers = {"Origin": origin_header}
    if referer:
        headers["Referer"] = referer
    return headers


def fill_sign_in_form(html, page_url, email, password, pin=None):
    """The sign-in form filled as a user would: (action URL, form fields). Hidden inputs (the CSRF
    token among them) are kept; the identity and secret fields are filled: a field named "pin" gets
    the registration PIN, the other secret field the password."""
    check = "sign-in-form"
    _, forms = _forms(html, page_url, check)
    candidates = [f for f in forms if f.xpath(".//input[@type='password']")]
    if len(candidates) != 1:
        raise SimulatorError(check, f"expected one form with a password field on {page_url}, found {len(candidates)}")
    form = candidates[0]
    if (form.method or "GET").upper() != "POST":
        raise SimulatorError(check, "the sign-in form does not use POST")
    secret_fields = form.xpath(".//input[@type='password']")
    pin_fields = [f for f in secret_fields if f.get("name") == "pin"]
    password_fields = [f for f in secret_fields if f.get("name") != "pin"]
    if pin_fields and pin is None:
        raise SimulatorError(check, "the sign-in form asks for a registration PIN; pass --pin")
    identity_fields = [
        i for i in form.xpath(".//input[@name]")
        if (i.get("type") or "text").lower() in ("text", "email") and i.get("name")
    ]
    if not identity_fields:
        raise SimulatorError(check, "the sign-in form has no identity (email or user name) field")
    identity = next((i for i in identity_fields if (i.get("type") or "").lower() == "email"), identity_fields[0])
    filled = [(identity.name, email)] + [(f.name, password) for f in password_fields[:1]]
    filled += [(f.name, pin) for f in pin_fields[:1]]
    values = [(name, value) for name, value in form.form_values() if name not in {n for n, _ in filled}]
    values += filled
    submit = form.xpath(".//*[(self::input or self::button) and @type='submit' and @name]")
    if submit:
        values.append((submit[0].get("name"), submit[0].get("value") or ""))
    action = form.action or page_url
    return action, values


def read_auto_post(html, page_url):
    """The wresult token from the page that auto-posts back to appru (MS-MDE2 3.2)."""
    check = "sign-in-result"
    document, forms = _forms(html, page_url, check)
    for form in forms:
        if form.get("action") == APPRU:
            if (form.method or "GET").upper() != "POST":
                raise SimulatorError(check, "the form back to appru does not use POST")
            token = dict(form.form_values()).get("wresult", "")
            if not token:
                raise SimulatorError(check, "the form back to appru has no wresult")
            return token
    if any(f.xpath(".//input[@type='password']") for f in forms):
        errors = " ".join(" ".join(e.text_content().split()) for e in document.xpath(
            "//*[contains(concat(' ', normalize-space(@class), ' '), ' errorlist ')"
            " or contains(concat(' ', normalize-space(@class), ' '), ' error ') or @role='alert']"))
        raise SimulatorError(check, f"the server showed the sign-in form again{': ' + errors if errors else ''}")
    actions = [f.get("action") for f in forms]
    raise SimulatorError(check, f"no form posts to {APPRU}; form actions found: {actions}")


# --- Entra ID (Microsoft Entra integration with MDM) ----------------------------------------------

def jwt_claims(token):
    """The payload of a JWT, unverified (the client only reads it, as Windows does for the device
    id); {} when it is not readable, so that the server gets to refuse a bad token itself."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def terms_page_url(terms_url, request_id, joining):
    """The terms-of-use URL with the query Windows adds (Entra integration with MDM, terms of use)."""
    parts = urllib.parse.urlsplit(terms_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [("redirect_uri", TERMS_REDIRECT_URI), ("client-request-id", request_id), ("api-version", "1.0")]
    if joining:
        query.append(("mode", "azureadjoin"))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))


def accept_form(html, page_url, *, joining):
    """(action URL, fields) of the page's Accept button. During an Entra join the page must not
    offer Decline (Windows shows none there)."""
    check = "terms-page"
    _, forms = _forms(html, page_url, check)
    for form in forms:
        buttons = form.xpath(".//*[(self::button or self::input) and @type='submit' and @name]")
        accept = [b for b in buttons if (b.get("value") or "").lower() == "accept"]
        if not accept:
            continue
        if joining and any((b.get("value") or "").lower() == "decline" for b in buttons):
            raise SimulatorError("terms-decline", "the terms-of-use page offers Decline during an Entra join")
        if (form.method or "GET").upper() != "POST":
            raise SimulatorError(check, "the terms-of-use form does not use POST")
        values = list(form.form_values()) + [(accept[0].get("name"), accept[0].get("value"))]
        return form.action or page_url, values
    raise SimulatorError(check, f"no Accept button on the terms-of-use page: {_page_text(html)}")


def read_terms_answer(location, request_id):
    """The OpaqueBlob of the 302 back to redirect_uri after Accept; errors raise."""
    check = "terms-answer"
    if not (location or "").startswith(TERMS_REDIRECT_URI + "?"):
        raise SimulatorError(check, f"the answer goes to {location!r}, not back to {TERMS_REDIRECT_URI}")
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query, keep_blank_values=True))
    if "error" in answer:
        raise SimulatorError(check, f"error {answer['error']}: {answer.get('error_description', '')}")
    if answer.get("IsAccepted") != "true":
        raise SimulatorError(check, f"IsAccepted is {answer.get('IsAccepted')!r}, expected 'true'")
    if answer.get("client-request-id") != request_id:
        raise SimulatorError(check, f"client-request-id {answer.get('client-request-id')!r} is not ours ({request_id})")
    if not answer.get("OpaqueBlob"):
        raise SimulatorError(check, "no OpaqueBlob with the acceptance")
    return answer["OpaqueBlob"]
