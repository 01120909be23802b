from django.http import HttpResponse


def go(request):
    return HttpResponse("go")


login = logout = accept = enroll = go
