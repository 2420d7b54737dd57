#!/usr/bin/env python3
"""A stand-in for `python -m django_ray.runtime.entrypoint` that speaks django-ray 0.2.0's
Ray Job contract without Django: used by rayworker's tests, benchmark and demo.

    contract_entrypoint.py --payload-b64 <urlsafe base64 of {"callable_path", "serialized_args", "serialized_kwargs"}>

It prints one JSON result line last, {"success", "result", "error", "traceback",
"exception_type"}, exactly as the real entrypoint does, and exits 0. It is stricter than the
real one about its input: the payload must be byte-identical to what django-ray's
RayJobRunner builds (compact JSON, serialized args/kwargs in json.dumps form), otherwise it
exits 3 - so every test that runs it also checks the worker's payload encoding.

Callables (callable_path "tests.tasks.<name>"):
  add(*n)                      sum of the arguments
  echo(*a, **kw)               {"args": a, "kwargs": kw}
  fail(msg, log=None)          appends the time to log, raises ValueError(msg) -> builtins.ValueError
  no_retry(msg)                raises tests.tasks.NoRetryError(msg) -> tests.tasks.NoRetryError
  sleep(seconds, pidfile=None) writes its pid to pidfile, sleeps, returns "slept"
  block(release, started=None, log=None)
                               touches <started>/<pid>, appends "start <t>" to log, waits until
                               the file <release> exists, appends "end <t>", returns its pid
  record(path, value)          appends value + "\n" to path, returns value
  spew(nbytes, line=100)       prints nbytes of filler lines ("yyy...\n"), then the result line
  spew_text(nbytes)            prints nbytes of filler and no result line
  big_result(n)                returns "x" * n
  non_json_last(text)          prints the result line, then text as the last line
  silent()                     prints nothing, exits 0
  exit(code, msg="")           prints msg to stderr, exits with code, no result line
  env(name)                    returns os.environ.get(name)
  long_line(n)                 prints one line of n bytes that is not a result line
  spawn_sleep(seconds, pidfile) starts a child `sleep` in its process group, writes
                               "<own pid> <child pid>" to pidfile, sleeps
  orphan(pidfile)              starts a child `sleep 300`, writes its pid, returns at once
  ignore_term(seconds, pidfile) ignores SIGTERM, writes its pid, sleeps
  unstorable(kind)             text PostgreSQL cannot store as is: kind "nul" raises
                               ValueError("NUL\x00here"), "surrogate" raises ValueError with a
                               lone surrogate (bytes decoded with surrogateescape), "stderr"
                               writes a NUL and a non-UTF-8 byte to stderr and exits 1 without a result line,
                               "result" returns a string holding both
  exec_once(dir, key, seconds=0, ignore_term=False)
                               records one execution of task <key> in <dir>/runs.log:
                               "start <key> <pid>", sleeps, "end <key> <pid>"; holds an
                               exclusive flock on <dir>/<key>.lock while it lives, and writes
                               "overlap <key> <pid>" first if another execution of <key>
                               still holds it (the kernel drops the lock when a run dies)
A callable_path that is not a dotted identifier is rejected: usage error, exit 2 (like a
payload the real entrypoint cannot parse). An unknown callable is a ModuleNotFoundError result.
"""
import argparse
import base64
import json
import os
import re
import sys
import time
import traceback


class NoRetryError(Exception):
    pass


NoRetryError.__module__ = "tests.tasks"


def add(*n):
    return sum(n)


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def fail(msg="boom", log=None):
    if log:
        with open(log, "a") as f:
            f.write(f"{time.time():.6f}\n")
    raise ValueError(msg)


def no_retry(msg="do not retry"):
    raise NoRetryError(msg)


def sleep(seconds, pidfile=None):
    if pidfile:
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
    time.sleep(seconds)
    return "slept"


def block(release, started=None, log=None):
    if started:
        os.makedirs(started, exist_ok=True)
        open(os.path.join(started, str(os.getpid())), "w").close()
    if log:
        with open(log, "a") as f:
            f.write(f"start {time.time():.6f}\n")
    while not os.path.exists(release):
        time.sleep(0.02)
    if log:
        with open(log, "a") as f:
            f.write(f"end {time.time():.6f}\n")
    return os.getpid()


def record(path, value):
    with open(path, "a") as f:
        f.write(str(value) + "\n")
    return value


def _filler(nbytes, line=100):
    chunk = ("y" * (line - 1) + "\n").encode()
    out = sys.stdout.buffer
    while nbytes > 0:
        n = min(nbytes, len(chunk))
        out.write(chunk[: n - 1] + b"\n")  # every line ends with a newline
        nbytes -= n
    out.flush()


def spew(nbytes, line=100):
    _filler(nbytes, line)
    return "spewed"


def spew_text(nbytes):
    _filler(nbytes)
    sys.exit(0)


def big_result(n):
    return "x" * n


def non_json_last(text):
    _emit({"success": True, "result": "ignored", "error": None, "traceback": None, "exception_type": None})
    print(text)
    sys.exit(0)


def silent():
    sys.exit(0)


def exit(code, msg=""):
    if msg:
        print(msg, file=sys.stderr)
    sys.exit(code)


def env(name):
    return os.environ.get(name)


def long_line(n):
    sys.stdout.write("z" * n)
    sys.exit(0)


def spawn_sleep(seconds, pidfile):
    import subprocess
    child = subprocess.Popen(["sleep", str(seconds)])
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(seconds)
    return "slept"


def orphan(pidfile):
    import subprocess
    child = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.rename(pidfile + ".tmp", pidfile)
    return "left a child behind"


def ignore_term(seconds, pidfile):
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(seconds)
    return "survived"


def unstorable(kind):
    surrogate = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")  # 'caf\udce9 \udcff'
    if kind == "nul":
        raise ValueError("NUL\x00here")
    if kind == "surrogate":
        raise ValueError("bad name " + surrogate)
    if kind == "stderr":
        sys.stderr.buffer.write(b"fatal\x00error caf\xe9\n")  # a NUL and a byte that is not UTF-8
        sys.exit(1)
    return "NUL\x00 and " + surrogate


def _record(dir, line):
    with open(os.path.join(dir, "runs.log"), "a") as f:  # one small O_APPEND write: atomic
        f.write(f"{line} {time.time():.6f}\n")


def exec_once(dir, key, seconds=0.0, ignore_term=False):
    import fcntl
    import signal
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.makedirs(dir, exist_ok=True)
    lock = os.open(os.path.join(dir, key + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _record(dir, f"overlap {key} {os.getpid()}")
    _record(dir, f"start {key} {os.getpid()}")
    time.sleep(seconds)
    _record(dir, f"end {key} {os.getpid()}")
    return key


def _emit(envelope):
    sys.stdout.write(json.dumps(envelope) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description="django-ray contract entrypoint for tests")
    parser.add_argument("--payload-b64", required=True)
    a = parser.parse_args()

    raw = base64.urlsafe_b64decode(a.payload_b64.encode("ascii"))
    if base64.urlsafe_b64encode(raw).decode("ascii") != a.payload_b64:
        print("error: payload is not padded URL-safe base64", file=sys.stderr)
        return 3
    payload = json.loads(raw.decode("utf-8"))
    if list(payload) != ["callable_path", "serialized_args", "serialized_kwargs"]:
        print(f"error: payload keys {list(payload)}", file=sys.stderr)
        return 3
    args = json.loads(payload["serialized_args"])
    kwargs = json.loads(payload["serialized_kwargs"])
    canonical = json.dumps({"callable_path": payload["callable_path"], "serialized_args": json.dumps(args),
                            "serialized_kwargs": json.dumps(kwargs)}, separators=(",", ":")).encode("utf-8")
    if canonical != raw:
        print(f"error: payload is not django-ray's encoding:\n got {raw!r}\nwant {canonical!r}", file=sys.stderr)
        return 3

    path = payload["callable_path"]
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", path):
        print(f"usage: contract_entrypoint.py --payload-b64 PAYLOAD\nerror: invalid payload: callable_path {path!r} is not a dotted path", file=sys.stderr)
        return 2
    try:
        module, _, name = path.rpartition(".")
        fn = globals().get(name) if module == "tests.tasks" and not name.startswith("_") else None
        if fn is None:
            raise ModuleNotFoundError(f"No module named {path!r}")
        result = fn(*args, **kwargs)
        envelope = {"success": True, "result": result, "error": None, "traceback": None, "exception_type": None}
    except Exception as e:  # the real entrypoint catches Exception, not SystemExit
        envelope = {"success": False, "result": None, "error": str(e), "traceback": traceback.format_exc(),
                    "exception_type": type(e).__module__ + "." + type(e).__name__}
    _emit(envelope)
    return 0


if __name__ == "__main__":
    sys.exit(main())
