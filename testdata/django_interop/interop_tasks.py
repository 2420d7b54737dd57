"""Tasks for rayworker's interop test, run by django-ray's real entrypoint."""
from django.tasks import task


@task
def add(a, b):
    return a + b


@task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task
def big(n):
    return "x" * n


@task
def fail(msg):
    raise ValueError(msg)


@task(queue_name="high-priority")
def urgent():
    return "first"
