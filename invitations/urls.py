from django.urls import path

from . import views

app_name = "invitations"

urlpatterns = [
    path("go", views.go, name="go"),
    path("login", views.login, name="login"),
    path("logout", views.logout, name="logout"),
    path("invite/<str:token>", views.accept, name="accept"),
    path("enroll", views.enroll, name="enroll"),
    path("enroll/pin", views.request_pin, name="request_pin"),
    path("password/reset", views.password_reset, name="password_reset"),
    path("password/reset-sent", views.password_reset_sent, name="password_reset_sent"),
    path("password/reset/<uidb64>/<token>", views.password_reset_confirm, name="password_reset_confirm"),
    path("password/reset-done", views.password_reset_done, name="password_reset_done"),
]
