"""Driver for rayworker's interop test: Django enqueues with django-ray 0.2.0's backend, and
later reads the outcomes with get_result().

    python interop.py enqueue          prints {"name": result_id, ...}
    python interop.py results ID...    prints {result_id: {"status", "return_value", "errors"}}
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interop_settings")

import django  # noqa: E402

django.setup()

import interop_tasks as t  # noqa: E402
from django.tasks import default_task_backend  # noqa: E402


def enqueue():
    ids = {
        "add": t.add.enqueue(2, 3).id,
        "echo": t.echo.enqueue("caf\u00e9", 1e16, 0.00001, [1, None], key={"b": 2, "a": "\U0001F600"}).id,
        "big": t.big.enqueue(5000).id,
        "fail": t.fail.enqueue("boom").id,
        "urgent": t.urgent.enqueue().id,
    }
    print(json.dumps(ids))


def results(ids):
    out = {}
    for rid in ids:
        r = default_task_backend.get_result(rid)
        out[rid] = {
            "status": str(r.status),
            "return_value": r.return_value if str(r.status) == "SUCCESSFUL" else None,
            "errors": [{"exception_class_path": e.exception_class_path, "traceback": e.traceback} for e in r.errors],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "enqueue":
        enqueue()
    else:
        results(sys.argv[2:])
