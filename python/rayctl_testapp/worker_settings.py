"""Django settings for running django-ray 0.2.0's own worker (`manage.py django_ray_worker`)
beside rayworker on one database: the mixed-fleet test. Everything comes from the environment:

  RAYCTL_TEST_DATABASE_URL   postgres://user[:password]@host:port/dbname[?search_path=schema]
  RAY_ADDRESS                the Ray Jobs API (http://host:8265)
  RAYCTL_PYTHONPATH          PYTHONPATH for the jobs (this repo's python/ dir)
  RAYCTL_WORKER_LEASE_SECONDS, RAYCTL_WORKER_HEARTBEAT_SECONDS, RAYCTL_STUCK_TASK_TIMEOUT_SECONDS
                             django-ray's timings (defaults 60, 15, 300)
"""

import os
from urllib.parse import parse_qs, unquote, urlparse

from rayctl_testapp.settings import *  # noqa: F403 (SECRET_KEY, TASKS, ...)

INSTALLED_APPS = ["django_ray"]


def _database(url: str) -> dict:
    u = urlparse(url)
    db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")) or "postgres",
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": {},
    }
    query = parse_qs(u.query)
    if "search_path" in query:
        db["OPTIONS"]["options"] = "-c search_path=" + query["search_path"][0]
    if "sslmode" in query:
        db["OPTIONS"]["sslmode"] = query["sslmode"][0]
    return db


DATABASES = {"default": _database(os.environ["RAYCTL_TEST_DATABASE_URL"])}

DJANGO_RAY = {
    "RAY_ADDRESS": os.environ["RAY_ADDRESS"],
    "RAY_RUNTIME_ENV": {
        "env_vars": {
            "DJANGO_SETTINGS_MODULE": "rayctl_testapp.settings",
            "PYTHONPATH": os.environ.get("RAYCTL_PYTHONPATH", os.path.dirname(os.path.dirname(__file__))),
        }
    },
    "WORKER_LEASE_SECONDS": int(os.environ.get("RAYCTL_WORKER_LEASE_SECONDS", "60")),
    "WORKER_HEARTBEAT_SECONDS": int(os.environ.get("RAYCTL_WORKER_HEARTBEAT_SECONDS", "15")),
    "STUCK_TASK_TIMEOUT_SECONDS": int(os.environ.get("RAYCTL_STUCK_TASK_TIMEOUT_SECONDS", "300")),
}
