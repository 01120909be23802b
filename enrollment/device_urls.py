"""Device-facing URLs of enrollment (SOAP, CSRF-exempt; OMA-DM is in management/device_urls.py). Paths are matched case-insensitively and never get a
slash redirect: Windows does not follow a 301 (MS-MDE2 3.1). Every service URL except the fixed
autodiscovery one carries the organisation's enrollment key, so regenerating it stops them all."""
import re

from django.urls import re_path

from . import device_views, federated, terms

app_name = "enrollment"

KEY = r"(?P<key>[A-Za-z0-9_-]{1,64})"


def anycase(literal):
    """A regex matching `literal` in any letter case. Django cannot reverse the (?i) flag, but it
    reverses a character class to its first member, so reverse() gives back `literal` as written."""
    return "".join(f"[{c}{c.swapcase()}]" if c.isalpha() else re.escape(c) for c in literal)


def service(name, key=True):
    prefix = anycase("EnrollmentServer/") + (KEY + "/" if key else "")
    return rf"^{prefix}{anycase(name)}$"


urlpatterns = [
    re_path(service("Discovery.svc", key=False), device_views.discovery, name="autodiscovery"),
    re_path(service("Discovery.svc"), device_views.discovery, name="discovery"),
    re_path(service("Policy.svc"), device_views.policy, name="policy"),
    re_path(service("Enrollment.svc"), device_views.enrollment, name="enrollment"),
    re_path(service("SignIn"), federated.sign_in, name="signin"),
    # Pasted once into Entra ID (the MDM app's terms of use URL), so like autodiscovery it carries no enrollment key.
    re_path(service("TermsOfUse", key=False), terms.terms_of_use, name="terms"),
]
