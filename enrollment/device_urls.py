"""Device-facing URLs (SOAP/XML, CSRF-exempt). Paths are matched case-insensitively and never get a
slash redirect: Windows does not follow a 301 (brief §1). Every service URL except the fixed
autodiscovery one carries the organisation's enrollment key, so regenerating it stops them all."""
from django.urls import re_path

from . import federated, views

app_name = "enrollment"

KEY = r"(?P<key>[A-Za-z0-9_-]{1,64})"

urlpatterns = [
    re_path(r"(?i)^EnrollmentServer/Discovery\.svc$", views.discovery, name="autodiscovery"),
    re_path(rf"(?i)^EnrollmentServer/{KEY}/Discovery\.svc$", views.discovery, name="discovery"),
    re_path(rf"(?i)^EnrollmentServer/{KEY}/Policy\.svc$", views.policy, name="policy"),
    re_path(rf"(?i)^EnrollmentServer/{KEY}/Enrollment\.svc$", views.enrollment, name="enrollment"),
    re_path(rf"(?i)^EnrollmentServer/{KEY}/SignIn$", federated.sign_in, name="signin"),
]
