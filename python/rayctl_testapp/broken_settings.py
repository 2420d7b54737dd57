"""A settings module that exists but breaks django.setup(): the executors' start check must
refuse it (one line, exit 2) before any task is claimed."""

from rayctl_testapp.settings import *  # noqa: F401,F403

raise RuntimeError("broken settings on purpose")
