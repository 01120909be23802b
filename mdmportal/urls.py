from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("enrollment.device_urls")),
    path("", include("management.device_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("mdmportal.api_urls")),
    path("", include("invitations.urls")),
    # Pages name their icon (<link rel="icon">); a browser asks for /favicon.ico on those that cannot
    # (the API's JSON, a downloaded file opened in a tab).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=True)),
]
