"""The secrets production must set, and the values that are no secret: the development key written in
mdmportal/settings.py and the placeholders of deploy/mdmportal.env.example. Anyone who has read either
can sign sessions and federated sign-in tokens (SECRET_KEY) or open the CA's private keys
(CA_KEY_PASSPHRASE), so outside DEBUG the settings refuse to load with them (ImproperlyConfigured)
and `check --deploy` reports them as errors (mdmportal/checks.py)."""

DEV_SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production-0123456789"
# Every placeholder of deploy/mdmportal.env.example starts so (tests/test_secrets_settings.py reads the file).
PLACEHOLDER_PREFIX = "change-me"
GENERATE = 'python3 -c "import secrets; print(secrets.token_urlsafe(50))"'


def unusable(name, value):
    """Why `value` cannot be the production `name` (SECRET_KEY, CA_KEY_PASSPHRASE), or None."""
    value = (value or "").strip()
    if not value:
        return f"{name} is not set"
    if value == DEV_SECRET_KEY:
        return f"{name} is the development key written in mdmportal/settings.py"
    if value.lower().startswith(PLACEHOLDER_PREFIX):
        return f"{name} is the placeholder of deploy/mdmportal.env.example"
    return None


def refusal(name, value):
    """The ImproperlyConfigured message for a DEBUG-off start, or None when `value` will do."""
    reason = unusable(name, value)
    if reason is None:
        return None
    return (f"{reason}. With DEBUG off the portal does not start on a secret that is published. Set {name} "
            f"in the environment (/etc/mdmportal/mdmportal.env) to a long random value, e.g. {GENERATE}; "
            "for development, set DEBUG=true (./serve does).")
