"""The project's URLs and error handlers, plus an address whose view fails: the 500 page is reached
the way a real bug reaches it (tests/test_error_pages.py)."""
from django.urls import path

from mdmportal.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("broken", broken), *urlpatterns]
