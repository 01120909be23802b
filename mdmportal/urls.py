from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

urlpatterns = [
    # OMA-DM first: every enrolled device posts to it at each check-in, the busiest address by far, and
    # each pattern tried before it costs every one of those requests a resolver pass.
    path("", include("management.device_urls")),
    path("", include("enrollment.device_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("mdmportal.api_urls")),
    path("", include("invitations.urls")),
    # Pages name their icon (<link rel="icon">); a browser asks for /favicon.ico on those that cannot
    # (the API's JSON, a downloaded file opened in a tab).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=True)),
]

# The error pages in the visitor's language, with the organisation's name (mdmportal/error_pages.py).
handler400 = "mdmportal.error_pages.bad_request"
handler403 = "mdmportal.error_pages.permission_denied"
handler404 = "mdmportal.error_pages.page_not_found"
handler500 = "mdmportal.error_pages.server_error"
