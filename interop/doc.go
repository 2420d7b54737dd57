// Package interop holds the Django interop tier: tests that run the real django-ray 0.2.0
// (Django's manage.py migrate, its RayTaskBackend's enqueue and get_result) against the same
// PostgreSQL schema as the Go binaries (rayctl migrate, rayctl enqueue, rayworker --sync with
// django-ray's real entrypoint), and check that each side reads exactly what the other wrote.
//
// The tests need DATABASE_URL (scripts/pg.sh) and RAYCTL_PYTHON, the python of the venv
// scripts/pyenv.sh makes (Django, django-ray 0.2.0). scripts/test.sh with no arguments sets
// both. Without them the tests skip, except under CI=true, where they fail. The package has
// no non-test code.
package interop
