"""Django settings of the interop tier: a minimal project with django-ray 0.2.0 installed, its
RayTaskBackend as the default task backend, and PostgreSQL from DATABASE_URL (a postgres:// URL
whose search_path parameter selects the test's schema).

Result storage follows django-ray's own settings, read from the environment variables rayworker
also reads, so Django and the Go worker share one configuration:
DJANGO_RAY_RESULT_STORAGE_BACKEND, DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH,
DJANGO_RAY_MAX_RESULT_SIZE_BYTES, and DJANGO_RAY_RESULT_STORAGE_S3_* / _GCS_* (unset ones get
django-ray's defaults)."""

import os
from urllib.parse import parse_qs, unquote, urlsplit

SECRET_KEY = "rayctl-interop-test-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_ray"]


def _database(url: str) -> dict:
    u = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    options = {}
    if "search_path" in query:
        options["options"] = "-c search_path=" + query["search_path"]
    if "sslmode" in query:
        options["sslmode"] = query["sslmode"]
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")) or "postgres",
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": options,
    }


# The task entrypoint (a rayworker subprocess) runs django.setup() with these settings but never
# touches the database, so it may run without DATABASE_URL.
DATABASES = {"default": _database(os.environ["DATABASE_URL"])} if os.environ.get("DATABASE_URL") else {}

TASKS = {
    "default": {
        "BACKEND": "django_ray.backends.RayTaskBackend",
        "QUEUES": ["default", "high-priority"],
        "OPTIONS": {"RAY_ADDRESS": "auto"},
    }
}

DJANGO_RAY = {
    "RAY_ADDRESS": "auto",
    "RESULT_STORAGE_BACKEND": os.environ.get("DJANGO_RAY_RESULT_STORAGE_BACKEND", "digest"),
    "RESULT_STORAGE_FILESYSTEM_PATH": os.environ.get("DJANGO_RAY_RESULT_STORAGE_FILESYSTEM_PATH") or None,
    "MAX_RESULT_SIZE_BYTES": int(os.environ.get("DJANGO_RAY_MAX_RESULT_SIZE_BYTES", str(1024 * 1024))),
    "RESULT_STORAGE_S3_BUCKET": os.environ.get("DJANGO_RAY_RESULT_STORAGE_S3_BUCKET") or None,
    "RESULT_STORAGE_S3_PREFIX": os.environ.get("DJANGO_RAY_RESULT_STORAGE_S3_PREFIX", "django-ray/results"),
    "RESULT_STORAGE_S3_REGION": os.environ.get("DJANGO_RAY_RESULT_STORAGE_S3_REGION") or None,
    "RESULT_STORAGE_S3_ENDPOINT_URL": os.environ.get("DJANGO_RAY_RESULT_STORAGE_S3_ENDPOINT_URL") or None,
    "RESULT_STORAGE_GCS_BUCKET": os.environ.get("DJANGO_RAY_RESULT_STORAGE_GCS_BUCKET") or None,
    "RESULT_STORAGE_GCS_PREFIX": os.environ.get("DJANGO_RAY_RESULT_STORAGE_GCS_PREFIX", "django-ray/results"),
}
