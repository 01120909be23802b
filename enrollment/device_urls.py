"""Device-facing URLs (SOAP/XML, CSRF-exempt). Paths are matched case-insensitively."""
urlpatterns = []
