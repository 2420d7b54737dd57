#!/usr/bin/env python
"""Django's manage.py for the test app: `python manage.py django_ray_worker` runs django-ray
0.2.0's own worker with rayctl_testapp.worker_settings (see that module for the environment)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rayctl_testapp.worker_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
