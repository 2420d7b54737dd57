"""rayworker's Python executor.

This program ships inside the rayworker binary and is started by it with the user's Python
(`python -c <bootstrap> MODE`, the bootstrap reading this program from file descriptor 4). It loads django-ray 0.2.0 once and then executes task
payloads through django-ray's own execution function
(django_ray.runtime.entrypoint.execute_task_from_payload, the code path of the Ray Job
entrypoint), so a task costs what the task costs, not an interpreter start and
django.setup().

Go keeps every decision (claims, leases, retries, results, cancellation); this program only
executes and reports. It talks to rayworker over a Unix socket on file descriptor 3, never
over stdout or stderr (tasks print):

    frame = uint32 header length | uint32 data length | header (JSON object) | data (bytes)

File descriptors travel with a frame (SCM_RIGHTS) when its header says "nfds".

Modes:
  pool      run one task at a time, in this process. Go sends {"op": "run", "id": N,
            "nfds": 2} with the payload as data and two pipes (the task's stdout and stderr);
            the task's file descriptors 1 and 2 point at them while it runs. The answer is
            {"op": "done", "id": N, "bytes": total, "truncated": bool} with the result line
            (or its last bytes) as data, or {"op": "exit", "id": N, "code": C} when the task
            raised SystemExit (this executor then exits, as the process would have), or
            {"op": "exit", "id": N, "signal": 2} for KeyboardInterrupt.
  ray_core  be a Ray driver: ray.init once, then each {"op": "submit", "id": N, "name": S}
            (payload as data) becomes one remote call of the same execution function;
            {"op": "submitted", "id": N, "ray_job_id": "<job id>:<task ref>"} follows at
            once and {"op": "done", "id": N} (result line as data) or
            {"op": "cancelled", "id": N} when Ray has the outcome. {"op": "cancel", "id": N,
            "force": bool} asks Ray to cancel. When the cluster stops answering the driver
            reports {"op": "disconnected", "error": S} and exits.

Startup: {"op": "ready", ...versions} once the executor can run tasks, or
{"op": "fatal", "error": one line, "detail": traceback} and exit status 3.
{"op": "exit"} from Go, or the socket closing, ends the executor.

Configuration comes from the environment variable RAYWORKER_EXECUTOR (a JSON object).
"""

import json
import os
import socket
import struct
import sys
import threading
import traceback

CONTROL_FD = 3
HEADER = struct.Struct(">II")
MAX_FRAME = 1 << 30


def one_line(exc):
    """The last line of an exception's traceback text: `Type: message`."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return " ".join(text.split("\n")[-1:]) or type(exc).__name__


class Channel:
    """Framed messages (and passed file descriptors) over the control socket."""

    def __init__(self, fd):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
        self.sock.set_inheritable(False)
        self.buf = bytearray()
        self.fds = []
        self.send_lock = threading.Lock()

    def send(self, header, data=b""):
        h = json.dumps(header, separators=(",", ":")).encode()
        frame = HEADER.pack(len(h), len(data)) + h
        with self.send_lock:
            self.sock.sendall(frame)
            if data:
                self.sock.sendall(data)

    def _fill(self, need):
        while len(self.buf) < need:
            msg, fds, _flags, _addr = socket.recv_fds(self.sock, max(65536, need - len(self.buf)), 16)
            for fd in fds:
                os.set_inheritable(fd, False)
            self.fds.extend(fds)
            if not msg:
                return False
            self.buf += msg
        return True

    def recv(self):
        """Returns (header, data, fds), or (None, b"", []) when the worker is gone."""
        if not self._fill(HEADER.size):
            return None, b"", []
        hlen, dlen = HEADER.unpack_from(self.buf)
        if hlen > MAX_FRAME or dlen > MAX_FRAME:
            raise ValueError("control frame too large: %d + %d bytes" % (hlen, dlen))
        if not self._fill(HEADER.size + hlen + dlen):
            return None, b"", []
        header = json.loads(bytes(self.buf[HEADER.size:HEADER.size + hlen]))
        data = bytes(self.buf[HEADER.size + hlen:HEADER.size + hlen + dlen])
        del self.buf[:HEADER.size + hlen + dlen]
        n = int(header.get("nfds", 0))
        fds, self.fds = self.fds[:n], self.fds[n:]
        return header, data, fds


def fatal(chan, error, detail=""):
    try:
        if chan is not None:
            chan.send({"op": "fatal", "error": error, "detail": detail})
    finally:
        sys.stderr.write("rayworker executor: %s\n%s" % (error, detail))
        sys.stderr.flush()
        os._exit(3)


def versions():
    out = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable, "pid": os.getpid()}
    try:
        from importlib import metadata

        for dist in ("django", "django-ray", "ray"):
            try:
                out[dist.replace("-", "_")] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    except Exception:  # noqa: BLE001 - versions are informational
        pass
    return out


def load_django_ray(chan):
    """Import django-ray's entrypoint and set Django up once; a failure is fatal."""
    try:
        from django_ray.runtime import entrypoint
    except BaseException as e:  # noqa: BLE001 - reported to rayworker
        fatal(chan, "cannot import django_ray.runtime.entrypoint with %s (is django-ray 0.2.0 installed in this "
              "interpreter's environment?): %s" % (sys.executable, one_line(e)), traceback.format_exc())
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        fatal(chan, "DJANGO_SETTINGS_MODULE is not set: set it in the environment or in the runtime env's "
              "env_vars (--ray-runtime-env)")
    try:
        entrypoint.bootstrap_django()
    except BaseException as e:  # noqa: BLE001
        fatal(chan, "django.setup() failed with DJANGO_SETTINGS_MODULE=%s: %s"
              % (os.environ.get("DJANGO_SETTINGS_MODULE"), one_line(e)), traceback.format_exc())
    return entrypoint


def flush_all():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - a task may have closed it
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)  # C-level stdio buffers of extensions
    except Exception:  # noqa: BLE001
        pass


def close_old_connections():
    """Django's per-request hygiene between tasks: drop unusable or expired connections."""
    try:
        from django.db import close_old_connections as close

        close()
    except Exception:  # noqa: BLE001 - a broken connection is the next task's to report
        pass


def exit_status(e):
    """The process exit status an uncaught SystemExit would give (and its message on stderr)."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        try:
            sys.stderr.write(str(code) + "\n")
        except Exception:  # noqa: BLE001
            pass
        return 1
    return code & 0xFF


def pool_main(chan, cfg):
    entrypoint = load_django_ray(chan)
    max_result = int(cfg.get("max_result_bytes", 32 << 20))
    saved_out = os.dup(1)
    saved_err = os.dup(2)
    streams = (sys.stdout, sys.stderr)
    chan.send(dict(op="ready", mode="pool", **versions()))
    while True:
        header, data, fds = chan.recv()
        if header is None or header.get("op") == "exit":
            return 0
        if header.get("op") != "run" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            fatal(chan, "unexpected control message %r" % (header,))
        task_id = header["id"]
        close_old_connections()
        flush_all()
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.close(fds[0])
        os.close(fds[1])
        envelope, exit_report = None, None
        try:
            envelope = entrypoint.execute_task_from_payload(data.decode("ascii"))
        except SystemExit as e:
            exit_report = {"code": exit_status(e)}
        except KeyboardInterrupt:
            traceback.print_exc()
            exit_report = {"signal": 2}
        except BaseException:  # noqa: BLE001 - what an uncaught exception would do to the process
            traceback.print_exc()
            exit_report = {"code": 1}
        finally:
            flush_all()
            sys.stdout, sys.stderr = streams
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
        if exit_report is not None:
            chan.send(dict(op="exit", id=task_id, **exit_report))
            return 0  # the process would have ended: a fresh executor replaces this one
        close_old_connections()
        text = envelope.encode("utf-8", "surrogatepass")
        total = len(text)
        truncated = total > max_result
        if truncated:
            text = text[-max_result:]
        chan.send({"op": "done", "id": task_id, "bytes": total, "truncated": truncated}, text)


def reachable(chan, address):
    """A quick TCP check of a Ray address (ray.init retries an unreachable one for minutes)."""
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # let ray.init judge it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        fatal(chan, "cannot reach the Ray cluster at %s: %s" % (address, e))


def ray_execute(payload_b64):
    """The remote function: django-ray's execution function on a Ray worker."""
    from django_ray.runtime.entrypoint import execute_task_from_payload

    return execute_task_from_payload(payload_b64)


def ray_probe():
    """Run on a Ray worker at start: django-ray importable and Django set up there."""
    import os as _os

    from django_ray.runtime import entrypoint

    if not _os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise RuntimeError("DJANGO_SETTINGS_MODULE is not set on the Ray worker: set it in the runtime env's "
                           "env_vars (--ray-runtime-env)")
    entrypoint.bootstrap_django()
    return versions()


def error_envelope(exc):
    """django-ray 0.2.0's Ray Core rule: an error from ray.get is a failure result."""
    return json.dumps({
        "success": False,
        "result": None,
        "error": str(exc),
        "traceback": None,
        "exception_type": type(exc).__module__ + "." + type(exc).__name__,
    })


def ray_core_main(chan, cfg):
    try:
        import logging

        import ray
        from ray import exceptions as ray_exceptions
    except BaseException as e:  # noqa: BLE001
        fatal(chan, "cannot import ray with %s (is ray[default] installed in this interpreter's environment?): %s"
              % (sys.executable, one_line(e)), traceback.format_exc())
    address = cfg.get("address") or None
    if address is None:
        # django-ray 0.2.0's --local: a Ray of this process's own, whatever RAY_ADDRESS says
        os.environ.pop("RAY_ADDRESS", None)
    init = {"address": address, "log_to_driver": False, "logging_level": logging.WARNING,
            "ignore_reinit_error": True}
    if cfg.get("runtime_env"):
        init["runtime_env"] = cfg["runtime_env"]
    if cfg.get("namespace"):
        init["namespace"] = cfg["namespace"]
    if address is None and cfg.get("num_cpus"):
        init["num_cpus"] = int(cfg["num_cpus"])
    if address:
        reachable(chan, address)
    try:
        ray.init(**init)
    except BaseException as e:  # noqa: BLE001
        fatal(chan, "ray.init(address=%r) failed: %s" % (address or "local", one_line(e)), traceback.format_exc())

    remote_execute = ray.remote(max_retries=0)(ray_execute)
    try:
        probe = ray.remote(max_retries=0)(ray_probe).options(name="rayworker:probe").remote()
        worker_versions = ray.get(probe, timeout=float(cfg.get("probe_timeout", 300)))
    except BaseException as e:  # noqa: BLE001
        fatal(chan, "a Ray worker cannot run django-ray tasks: %s" % one_line(e), traceback.format_exc())
    job_id = ray.get_runtime_context().get_job_id()

    lock = threading.Lock()
    pending = {}  # task id -> ObjectRef
    cancelled = set()
    check_now = threading.Event()  # a Ray-level error: look at the cluster at once

    def disconnected(error):
        try:
            chan.send({"op": "disconnected", "error": error})
        finally:
            os._exit(4)

    def finished(task_id, fut):
        with lock:
            pending.pop(task_id, None)
            was_cancelled = task_id in cancelled
            cancelled.discard(task_id)
        try:
            envelope = fut.result()
            if not isinstance(envelope, str):
                envelope = json.dumps({"success": True, "result": envelope, "error": None,
                                       "traceback": None, "exception_type": None})
        except ray_exceptions.LocalRayletDiedError as e:
            # This driver's own raylet is gone: every task in flight is lost with it, and
            # nothing more can run until it reconnects (RayConnectionError for all of them).
            disconnected(one_line(e))
        except BaseException as e:  # noqa: BLE001 - the failure result django-ray 0.2.0 records
            if was_cancelled:
                chan.send({"op": "cancelled", "id": task_id})
                return
            if isinstance(e, (ray_exceptions.WorkerCrashedError, ray_exceptions.NodeDiedError,
                              ray_exceptions.RaySystemError, ray_exceptions.ObjectLostError)):
                check_now.set()  # a node or the cluster may be going away: check before more claims
            envelope = error_envelope(e)
        try:
            chan.send({"op": "done", "id": task_id}, envelope.encode("utf-8", "surrogatepass"))
        except OSError:
            os._exit(0)  # rayworker is gone

    def health():
        interval = float(cfg.get("health_interval", 5))
        deadline = float(cfg.get("health_timeout", 10))
        while True:
            check_now.wait(interval)
            check_now.clear()
            answered = threading.Event()
            failure = []

            def check():
                try:
                    ray.cluster_resources()
                except BaseException as e:  # noqa: BLE001
                    failure.append(one_line(e))
                answered.set()

            threading.Thread(target=check, daemon=True).start()
            if not answered.wait(deadline):
                failure.append("the Ray cluster did not answer for %.0f s" % deadline)
            if failure or not ray.is_initialized():
                disconnected(failure[0] if failure else "ray is no longer initialized")

    threading.Thread(target=health, name="rayworker-health", daemon=True).start()
    ready = dict(op="ready", mode="ray_core", ray_job_id=job_id, **versions())
    ready["worker"] = worker_versions
    chan.send(ready)

    while True:
        header, data, fds = chan.recv()
        for fd in fds:
            os.close(fd)
        if header is None or header.get("op") == "exit":
            return 0
        op = header.get("op")
        task_id = header.get("id")
        if op == "submit":
            try:
                ref = remote_execute.options(name="django_ray:" + header.get("name", "task")).remote(data.decode("ascii"))
            except BaseException as e:  # noqa: BLE001
                chan.send({"op": "submit_failed", "id": task_id, "error": "Failed to submit to Ray Core: " + str(e),
                           "exception_type": type(e).__name__, "detail": traceback.format_exc()})
                continue
            with lock:
                pending[task_id] = ref
            chan.send({"op": "submitted", "id": task_id, "ray_job_id": "%s:%s" % (job_id, ref.hex()[:48])})
            ref.future().add_done_callback(lambda fut, task_id=task_id: finished(task_id, fut))
        elif op == "cancel":
            with lock:
                ref = pending.get(task_id)
                if ref is not None:
                    cancelled.add(task_id)
            if ref is not None:
                try:
                    ray.cancel(ref, force=bool(header.get("force")))
                except BaseException:  # noqa: BLE001 - already finished: its outcome is on the way
                    pass
        else:
            fatal(chan, "unexpected control message %r" % (header,))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "pool"
    try:
        cfg = json.loads(os.environ.pop("RAYWORKER_EXECUTOR", "{}") or "{}")
    except ValueError as e:
        fatal(None, "RAYWORKER_EXECUTOR is not JSON: %s" % e)
    try:
        chan = Channel(CONTROL_FD)
    except OSError as e:
        fatal(None, "no control socket on file descriptor %d (this program is started by rayworker): %s"
              % (CONTROL_FD, e))
    if mode == "pool":
        code = pool_main(chan, cfg)
    elif mode == "ray_core":
        code = ray_core_main(chan, cfg)
    else:
        fatal(chan, "unknown mode %r" % mode)
    flush_all()
    os._exit(code)


if __name__ == "__main__":
    main()
