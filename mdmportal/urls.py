from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("enrollment.device_urls")),
    path("", include("management.device_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("mdmportal.api_urls")),
    path("", include("invitations.urls")),
]
