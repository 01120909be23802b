"""The JSON API under /api/v1/ (token authentication, OpenAPI schema at schema/): each app declares
its own routes in its `api_urls.py` (one router per app), put together here."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("invitations.api_urls")),
    path("", include("enrollment.api_urls")),
    path("", include("management.api_urls")),
    path("autopilot/", include("autopilot.api_urls")),
]
