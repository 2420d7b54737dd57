#!/usr/bin/env python3
"""Demo tasks for `make demo`: a stand-in for django-ray's Ray Job entrypoint, without Django.

    python3 scripts/demo_tasks.py --payload-b64 <payload>

<payload> is URL-safe base64 (with padding) of the compact JSON
{"callable_path": ..., "serialized_args": "<json list>", "serialized_kwargs": "<json object>"},
exactly what rayworker (and django-ray 0.2.0) pass to `python -m django_ray.runtime.entrypoint`.
The last stdout line is the result envelope django-ray's entrypoint prints:
{"success": bool, "result": ..., "error": str|null, "traceback": str|null, "exception_type": str|null}
with exception_type "<module>.<Class>" (builtins.ValueError). The process exits 0 either way,
as the real entrypoint does; only a broken payload exits 2.

Tasks (callable_path):
  demo.tasks.add            a + b, at once
  demo.tasks.slow           sleeps `seconds` (default 3) and returns them
  demo.tasks.flaky          fails with builtins.ValueError about a third of the time
  demo.tasks.charge_card    fails with demo.payments.CardDeclined when cents > 5000
  demo.tasks.send_email     0.2 s; ConnectionResetError now and then
  demo.tasks.build_report   4 s of "work" and a larger result
"""

import argparse
import base64
import json
import random
import sys
import time
import traceback


class CardDeclined(Exception):
    """A payment provider's refusal (an exception defined outside builtins)."""


CardDeclined.__module__ = "demo.payments"


def add(a=0, b=0):
    return a + b


def slow(seconds=3):
    time.sleep(float(seconds))
    return {"slept": seconds}


def flaky(n=0):
    if random.random() < 0.34:
        raise ValueError(f"flaky input {n!r} rejected")
    return {"n": n, "ok": True}


def charge_card(customer="c_1", cents=100):
    time.sleep(0.2)
    if int(cents) > 5000:
        raise CardDeclined(f"card of {customer} declined for {cents} cents")
    return {"charged": int(cents), "customer": customer}


def send_email(to="ops@example.com"):
    time.sleep(0.2)
    if random.random() < 0.1:
        raise ConnectionResetError(f"SMTP connection to mail.example.com reset while sending to {to}")
    return {"sent": to}


def build_report(day="today"):
    time.sleep(4)
    return {"day": day, "rows": [{"k": i, "v": i * i} for i in range(50)]}


TASKS = {
    "demo.tasks.add": add,
    "demo.tasks.slow": slow,
    "demo.tasks.flaky": flaky,
    "demo.tasks.charge_card": charge_card,
    "demo.tasks.send_email": send_email,
    "demo.tasks.build_report": build_report,
}


def exception_type(exc):
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def run(payload):
    path = payload["callable_path"]
    func = TASKS.get(path)
    if func is None:
        raise ImportError(f"no demo task {path!r} (known: {', '.join(sorted(TASKS))})")
    args = json.loads(payload.get("serialized_args") or "[]")
    kwargs = json.loads(payload.get("serialized_kwargs") or "{}")
    return func(*args, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload-b64", required=True)
    opts = parser.parse_args(argv)
    try:
        payload = json.loads(base64.urlsafe_b64decode(opts.payload_b64.encode()).decode())
    except (ValueError, TypeError) as exc:
        print(json.dumps({"success": False, "result": None, "error": f"invalid payload: {exc}",
                          "traceback": None, "exception_type": exception_type(exc)}))
        return 2
    print(f"demo task {payload.get('callable_path')} starting", flush=True)
    try:
        result = run(payload)
        envelope = {"success": True, "result": result, "error": None, "traceback": None, "exception_type": None}
    except Exception as exc:  # the envelope reports every task failure
        envelope = {"success": False, "result": None, "error": str(exc),
                    "traceback": traceback.format_exc(), "exception_type": exception_type(exc)}
    print(json.dumps(envelope), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
