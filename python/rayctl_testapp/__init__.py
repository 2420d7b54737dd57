"""Test tasks and a minimal Django settings module for rayctl's real-Ray test tier.

A Ray Job runs the real django-ray 0.2.0 entrypoint
(`python -m django_ray.runtime.entrypoint --payload-b64 ...`) against these tasks. The job's
runtime_env must carry env_vars DJANGO_SETTINGS_MODULE=rayctl_testapp.settings and
PYTHONPATH=<repo>/python so the entrypoint can run django.setup() and import them.
"""
