"""The invitations app's routes of the JSON API: its one router (users, invitations, enrollment URL
rotations, the audit log) and the enrollment URL, a singleton whose two routes are mapped by hand.
mdmportal/api_urls.py includes them under /api/v1/."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("users", api.UserViewSet, basename="user")
router.register("invitations", api.InvitationViewSet, basename="invitation")
router.register("enrollment-url/rotations", api.UrlRotationViewSet, basename="url-rotation")
router.register("audit-events", api.AuditEventViewSet, basename="audit-event")

enrollment_url = api.EnrollmentUrlViewSet

urlpatterns = [
    path("enrollment-url/", enrollment_url.as_view({"get": "current"}), name="enrollment-url"),
    path("enrollment-url/regenerate/", enrollment_url.as_view({"post": "regenerate"}),
         name="enrollment-url-regenerate"),
    path("", include(router.urls)),
]
