"""Django's side of the interop tier, run with DJANGO_SETTINGS_MODULE=rayctl_testapp.interop_settings:

    python -m rayctl_testapp.interop enqueue            enqueue the interop tasks through
                                                        django-ray's RayTaskBackend; prints
                                                        {"name": "<task_id>", ...}
    python -m rayctl_testapp.interop results ID...      Django's get_result() for each id; prints
                                                        {"<id>": {...}, ...}

Everything printed is one JSON document on stdout, for the Go test to check.
"""

from __future__ import annotations

import hashlib
import json
import sys

import django


def _cases():
    from rayctl_testapp import tasks

    return {
        "add": (tasks.add, (2, 3), {}),
        # escaping, non-ASCII, floats and big integers: the result line and result_data must
        # be Python's json.dumps byte for byte
        "echo": (
            tasks.echo,
            (),
            {
                "text": 'héllo ✓ 😀 "q" </tag> \\ \t',
                "floats": [1.5, 0.1 + 0.2, 1e-07, 1e22, -0.0, 123456789.125],
                "big": 10**20,
                "nested": [None, True, False, {"k": [1, 2], "": "empty key"}],
            },
        ),
        "noisy": (tasks.noisy, (), {"lines": 2, "value": "done"}),
        "oversize": (tasks.oversize, (2 * 1024 * 1024 + 5,), {}),
        "fail_value": (tasks.fail_value, ("bad value",), {}),
        "fail_custom": (tasks.fail_custom, ("do not retry",), {}),
    }


def enqueue() -> dict:
    out = {}
    for name, (task, args, kwargs) in _cases().items():
        out[name] = task.enqueue(*args, **kwargs).id
    return out


def results(ids: list[str]) -> dict:
    from django.tasks import task_backends

    from django_ray.models import RayTaskExecution
    from django_ray.result_storage import FilesystemResultStorage
    from django_ray.conf.settings import get_settings

    backend = task_backends["default"]
    out = {}
    for task_id in ids:
        r = backend.get_result(task_id)
        row = RayTaskExecution.objects.get(task_id=task_id)
        item = {
            "status": str(r.status),
            "state": str(row.state),
            "args": r.args,
            "kwargs": r.kwargs,
            "attempt_number": row.attempt_number,
            "worker_ids": r.worker_ids,
            "result_reference": row.result_reference,
            "errors": [],
        }
        for e in r.errors:
            try:
                cls = e.exception_class
                resolved = cls.__module__ + "." + cls.__qualname__
            except Exception as exc:  # noqa: BLE001 - reported to the test
                resolved = "unresolvable: " + repr(exc)
            item["errors"].append(
                {
                    "exception_class_path": e.exception_class_path,
                    "exception_class": resolved,
                    "traceback_last_line": (e.traceback.strip().splitlines() or [""])[-1],
                }
            )
        if r.status == "SUCCESSFUL":
            try:
                value = r.return_value
            except AttributeError:
                item["return_value_missing"] = True
            else:
                text = json.dumps(value)
                item["return_value_json"] = text if len(text) < 4096 else None
                item["return_value_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
                item["return_value_bytes"] = len(text.encode("utf-8"))
                # byte compatibility: what the Go worker stored is what Python's worker would
                if row.result_data is not None:
                    item["result_data_is_python_json"] = row.result_data == text
                if row.result_reference and row.result_reference.startswith("resultfs://"):
                    root = get_settings()["RESULT_STORAGE_FILESYSTEM_PATH"]
                    item["reference_is_python_reference"] = (
                        FilesystemResultStorage(root).store(serialized_result=text) == row.result_reference
                    )
                if row.result_reference and row.result_reference.startswith(("s3://", "gs://")):
                    item.update(_object_checks(row.result_reference, text))
        out[task_id] = item
    return out


def _object_checks(reference: str, text: str) -> dict:
    """For an s3:// or gs:// reference: whether it is the one django-ray would write for text,
    and the stored object's metadata next to that of the object django-ray's own backend writes
    for the same text (under the prefix "python-check")."""
    from django_ray.conf.settings import get_settings
    from django_ray.result_storage import GCSResultStorage, S3ResultStorage, _build_object_key

    cfg = get_settings()
    scheme, rest = reference.split("://", 1)
    bucket = rest.split("/", 1)[0]
    payload = text.encode("utf-8")
    digest = hashlib.sha256(payload).hexdigest()
    if scheme == "s3":
        prefix = cfg.get("RESULT_STORAGE_S3_PREFIX", "django-ray/results")
        python_backend = S3ResultStorage(
            bucket=bucket,
            prefix="python-check",
            endpoint_url=cfg.get("RESULT_STORAGE_S3_ENDPOINT_URL"),
            region_name=cfg.get("RESULT_STORAGE_S3_REGION"),
        )
    else:
        prefix = cfg.get("RESULT_STORAGE_GCS_PREFIX", "django-ray/results")
        python_backend = GCSResultStorage(bucket=bucket, prefix="python-check")
    expected = f"{scheme}://{bucket}/{_build_object_key(prefix, digest)}?bytes={len(payload)}"

    def meta(ref: str) -> dict:
        key = ref.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
        if scheme == "s3":
            obj = python_backend.client.get_object(Bucket=bucket, Key=key)
            body = obj["Body"].read()
            content_type = obj["ContentType"]
        else:
            blob = python_backend.client.bucket(bucket).get_blob(key)
            body = blob.download_as_bytes()
            content_type = blob.content_type
        return {"key": key, "content_type": content_type, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}

    python_ref = python_backend.store(serialized_result=text)
    return {
        "reference_is_python_reference": reference == expected,
        "object": meta(reference),
        "python_object": meta(python_ref),
    }


def main(argv: list[str]) -> int:
    django.setup()
    if argv[:1] == ["enqueue"]:
        doc = enqueue()
    elif argv[:1] == ["results"] and len(argv) > 1:
        doc = results(argv[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
