"""Minimal Django settings for rayworker's interop test: django-ray 0.2.0's backend on the
PostgreSQL schema named by DATABASE_URL (its search_path parameter)."""
import os
from urllib.parse import parse_qs, unquote, urlparse

_url = urlparse(os.environ["DATABASE_URL"])
_query = parse_qs(_url.query)
_options = {}
if "search_path" in _query:
    _options["options"] = "-c search_path=" + _query["search_path"][0]

SECRET_KEY = "interop-test-only"
USE_TZ = True
INSTALLED_APPS = ["django_ray"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/") or "postgres",
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        "OPTIONS": _options,
    }
}
TASKS = {
    "default": {
        "BACKEND": "django_ray.backends.RayTaskBackend",
        "QUEUES": ["default", "high-priority"],
        "OPTIONS": {"RAY_ADDRESS": "auto"},
    }
}
DJANGO_RAY = {
    "RAY_ADDRESS": "auto",
    "MAX_RESULT_SIZE_BYTES": 1024,
    "RESULT_STORAGE_BACKEND": "filesystem",
    "RESULT_STORAGE_FILESYSTEM_PATH": os.environ.get("INTEROP_RESULTS", "/tmp/interop-results"),
}
