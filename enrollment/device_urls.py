"""Device-facing URLs (SOAP and SyncML, CSRF-exempt). Paths are matched case-insensitively and never get a
slash redirect: Windows does not follow a 301 (MS-MDE2 3.1). Every service URL except the fixed
autodiscovery one carries the organisation's enrollment key, so regenerating it stops them all."""
import re

from django.conf import settings
from django.urls import re_path

from . import federated, terms, views

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
    re_path(service("Discovery.svc", key=False), views.discovery, name="autodiscovery"),
    re_path(service("Discovery.svc"), views.discovery, name="discovery"),
    re_path(service("Policy.svc"), views.policy, name="policy"),
    re_path(service("Enrollment.svc"), views.enrollment, name="enrollment"),
    re_path(service("SignIn"), federated.sign_in, name="signin"),
    # The management address is written into the provisioning document (ADDR), keyless: devices keep
    # it for their whole enrollment, across enrollment-URL rotations.
    re_path(rf"^{anycase(settings.ENROLLMENT_MANAGEMENT_PATH.lstrip('/'))}$", views.management, name="management"),
    # Pasted once into Entra ID (the MDM app's terms of use URL), so like autodiscovery it carries no enrollment key.
    re_path(service("TermsOfUse", key=False), terms.terms_of_use, name="terms"),
]
