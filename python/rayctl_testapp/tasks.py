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


# --- tasks for the executor runners' tests (rayworker --sync's pool, Ray Core) ------------

_LEAKED = []


@task
def record(path, tag="run", seconds=0):
    """Append one line per execution to path (the fault tests count runs), then sleep."""
    import os

    with open(path, "a") as f:
        f.write(f"{tag} start {os.getpid()}\n")
    time.sleep(float(seconds))
    with open(path, "a") as f:
        f.write(f"{tag} end {os.getpid()}\n")
    return tag


@task
def pid():
    """The executing process's id: which executor (or Ray worker) ran the task."""
    import os

    return os.getpid()


@task
def exit_now(code=3, message="exiting now"):
    """os._exit: the process ends at once, without flushing Python's buffers."""
    import os

    print(message, flush=True)
    os._exit(int(code))


@task
def segfault():
    import ctypes

    print("about to crash", flush=True)
    ctypes.string_at(0)


@task
def sys_exit(code=2):
    print("calling sys.exit", flush=True)
    sys.exit(code)


@task
def spin():
    """An infinite loop: only a timeout or a cancel ends it."""
    while True:
        pass


@task
def leak(mb=10):
    """Keep mb MiB alive in the process after returning (a leaking task)."""
    _LEAKED.append("x" * (int(mb) << 20))
    return len(_LEAKED)


@task
def fork_child(pidfile, seconds=600):
    """Start a child process (same process group) that outlives the task unless killed, write
    its pid to pidfile, then sleep."""
    import subprocess

    child = subprocess.Popen(["sleep", str(seconds)])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    time.sleep(float(seconds))
    return child.pid


@task
def unserializable():
    return object()


@task
def unicode_text():
    return {"text": "héllo ✓ 😀 \u2028 \"q\" \\ \t", "lone": "\udc80", "nan": float("nan")}


@task
def print_lots(mb=1, value="done"):
    chunk = "y" * 1023 + "\n"
    for _ in range(int(mb) * 1024):
        sys.stdout.write(chunk)
    return value
