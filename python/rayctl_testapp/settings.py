"""Minimal Django settings: enough for django.setup() in a Ray Job driver. No database is
configured because django-ray 0.2.0's entrypoint never touches one."""

SECRET_KEY = "rayctl-test-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict = {}
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
