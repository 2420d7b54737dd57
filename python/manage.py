#!/usr/bin/env python
"""manage.py of the Django interop tier's minimal project (settings:
rayctl_testapp.interop_settings, a database from DATABASE_URL). Run it from the venv that
scripts/pyenv.sh makes. The Ray mixed-fleet test runs `manage.py django_ray_worker` with
DJANGO_SETTINGS_MODULE=rayctl_testapp.worker_settings (django-ray's Ray Job mode)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rayctl_testapp.interop_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
