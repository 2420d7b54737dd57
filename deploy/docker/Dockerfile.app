# syntax=docker/dockerfile:1
# The pool and Ray Core modes run rayworker inside the Django app's image: it starts the
# app's own Python (the executors import the app, Django and django-ray 0.2.0). Add the
# binary to your app image with one COPY from the release image; nothing else changes.
# The same image serves the KubeRay RayCluster (Ray Job and Ray Core modes): it needs the
# app, django-ray 0.2.0 and the cluster's Ray version.
# deploy/kubernetes/overlays/{pool,process,ray-core} run it as /usr/local/bin/rayworker.
ARG RAYWORKER_VERSION=0.1.0
FROM ghcr.io/rayctl/rayworker:${RAYWORKER_VERSION} AS rayworker

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --create-home app
WORKDIR /app
COPY requirements.txt .
# requirements.txt pins Django, django-ray==0.2.0 and (for the Ray modes) ray[default]
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=rayworker /usr/local/bin/rayworker /usr/local/bin/rayworker
ENV PATH=/app/.venv/bin:$PATH VIRTUAL_ENV=/app/.venv DJANGO_SETTINGS_MODULE=app.settings
USER 10001
# the app's own server stays the default; the rayworker Deployment sets command: rayworker
CMD ["gunicorn", "app.wsgi"]
