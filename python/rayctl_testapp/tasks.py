"""Tasks the real-Ray tier submits. Each is a Django 6 task (django.tasks.task), which
django-ray's import_callable unwraps through `.func`, as it does for an application's tasks."""

from __future__ import annotations

import sys
import time

from django.tasks import task


class NonRetryableError(Exception):
    """A custom error type a deployment could put in RETRY_EXCEPTION_DENYLIST
    (its exception_type is "rayctl_testapp.tasks.NonRetryableError")."""


@task
def add(a, b):
    return a + b


@task
def echo(**kwargs):
    return kwargs


@task
def fail_value(message="bad value"):
    raise ValueError(message)


@task
def fail_custom(message="do not retry"):
    raise NonRetryableError(message)


@task
def sleep(seconds):
    time.sleep(float(seconds))
    return {"slept": seconds}


@task
def oversize(n_bytes):
    """Return a string of n_bytes characters: over django-ray's 1 MiB inline limit when
    n_bytes > 1048576, so the worker must store it by reference."""
    return "x" * int(n_bytes)


@task
def noisy(lines=3, value="done"):
    """Print noise (including a line that looks like JSON, and stderr) before the result, which
    the entrypoint prints last."""
    for i in range(int(lines)):
        print(f"noise line {i}")
    print('{"success": false, "note": "not the last line"}')
    print("to stderr", file=sys.stderr)
    sys.stdout.flush()
    return value
