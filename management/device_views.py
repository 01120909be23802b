"""Device endpoint of management: the OMA-DM sessions of enrolled devices (MS-MDM)."""
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import omadm


@csrf_exempt
@require_http_methods(["POST"])
def management(request):
    """OMA-DM sessions of enrolled devices (MS-MDM); the query string Windows appends is ignored."""
    return omadm.serve(request)


def unavailable(request, exception):
    """A device's answer while the database or Redis is down (mdmportal.unavailable): a plain 503, and
    the device retries on its schedule."""
    return HttpResponse("The server is temporarily unavailable.\n", status=503, content_type="text/plain; charset=utf-8")
