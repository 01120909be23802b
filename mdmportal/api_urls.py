"""The JSON API under /api/v1/ (token authentication, OpenAPI schema at schema/)."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from invitations import api as invitations_api

router = SimpleRouter()
router.register("users", invitations_api.UserViewSet, basename="user")
router.register("invitations", invitations_api.InvitationViewSet, basename="invitation")
router.register("enrollment-url/rotations", invitations_api.UrlRotationViewSet, basename="url-rotation")
router.register("audit-events", invitations_api.AuditEventViewSet, basename="audit-event")

# The enrollment URL is a singleton, not a collection: its two routes are mapped by hand.
enrollment_url = invitations_api.EnrollmentUrlViewSet

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("enrollment-url/", enrollment_url.as_view({"get": "current"}), name="enrollment-url"),
    path("enrollment-url/regenerate/", enrollment_url.as_view({"post": "regenerate"}),
         name="enrollment-url-regenerate"),
    path("", include(router.urls)),
    path("", include("enrollment.api")),
    path("autopilot/", include("autopilot.api")),
]
