"""API tokens of administrators (django-rest-knox): the database keeps only the SHA-512 of a token and
its first 15 characters (to find the row), so a copy of the database gives no API access (OWASP
Authentication Cheat Sheet). A token is shown once, when it is made: `create_api_token` or the
console's "API tokens" page. An administrator has at most one; making a new one replaces it."""
from django.db import transaction
from knox.models import AuthToken

from accounts.models import AuditEvent


def issue(user, *, actor=None, via, ip=None):
    """A new token for `user` (an active administrator), replacing the current one: the token in clear,
    to show once. The audit log says who made it and whether it replaced one (api_token.rotated)."""
    with transaction.atomic():
        replaced, _ = AuthToken.objects.filter(user=user).delete()
        instance, token = AuthToken.objects.create(user=user)
        AuditEvent.record(actor, "api_token.rotated" if replaced else "api_token.created", user, ip=ip,
                          detail={"via": via})
    return instance, token


def revoke(user, *, actor=None, via, ip=None):
    """Delete the tokens of `user`; how many there were."""
    with transaction.atomic():
        count, _ = AuthToken.objects.filter(user=user).delete()
        if count:
            AuditEvent.record(actor, "api_token.revoked", user, ip=ip, detail={"via": via})
    return count
