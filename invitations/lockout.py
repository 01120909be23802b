"""The account django-axes counts sign-in failures against, whichever form was used.

The portal forms pass `email=`, the console's login form `username=`; either may hold the email or
the separate MDM username. Resolving to the account's email makes the lockout per account."""
from .models import User


def account_for_lockout(request, credentials):
    credentials = credentials or {}
    typed = credentials.get("email") or credentials.get("username")
    if not typed and request is not None and request.method == "POST":
        typed = request.POST.get("email") or request.POST.get("username")
    typed = (typed or "").strip()
    user = User.objects.for_login(typed) if typed else None
    return user.email if user else typed.lower()
