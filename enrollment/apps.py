from django.apps import AppConfig


class EnrollmentConfig(AppConfig):
    verbose_name = "Devices and enrollment"
    name = "enrollment"
