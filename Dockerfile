# The service's container images. Targets:
#   runtime (default)  the API on 0.0.0.0:8080; with no configuration it runs the embedded
#                      database (moto) inside the container, seeded: `docker run -p 8080:8080 IMAGE`
#   lambda             the app without moto + the AWS Lambda Web Adapter, for AWS (`--target lambda`)
#   lambda-app         the lambda target without the adapter (what `make container-smoke` builds
#                      and measures: the adapter comes from public.ecr.aws, not a package registry)
# BASE is any image with python3 (>= 3.11) and its venv module, e.g. a Debian rootfs:
#   docker build --build-arg BASE=localhost/app-base:bookworm .
ARG BASE=python:3.12-slim

# --- builder: a venv at /opt/venv with the locked dependencies and the app (non-editable) ------
FROM ${BASE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, against a stub package, so that a change to app_lib/ alone reuses this layer.
# What serving against AWS needs, nothing for tests or linting.
COPY pyproject.toml constraints.txt ./
RUN mkdir app_lib && touch app_lib/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y app-lib \
    && rm -rf app_lib build ./*.egg-info
# README.m[d]: the readme is optional (a glob that matches nothing copies nothing, as long as
# another source of the same COPY exists: buildah refuses a COPY whose only source is missing).
COPY pyproject.toml README.m[d] ./
COPY app_lib/ app_lib/
RUN pip install --no-deps -c constraints.txt . \
    && pip check

# --- builder-embedded: the same venv plus the embedded database (moto) --------------------------
FROM builder AS builder-embedded
RUN pip install -c constraints.txt '.[embedded]' \
    && pip check

# --- runtime: the venv on the same base, as a non-root user -------------------------------------
FROM ${BASE} AS runtime
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=builder-embedded /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The embedded database keeps its data in DATA_DIR (.data, relative to /app): owned by the app
# user. Mount a volume there (-v app-lib-data:/app/.data) to keep it beyond the container.
RUN mkdir -p /app/.data && chown 10001:10001 /app/.data
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
# Always 0.0.0.0:8080 inside a container, whatever HOST and PORT an --env-file copied from a dev
# .env says (HOST=127.0.0.1 would make it unreachable, PORT=8000 would miss `-p 8080:8080`).
CMD ["python", "-m", "app_lib", "serve", "--host", "0.0.0.0", "--port", "8080"]

# --- lambda-app: the app against AWS's DynamoDB, no moto (it never runs embedded) ------------
FROM ${BASE} AS lambda-app
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DYNAMODB_HOST="" \
    RUN_WORKER=false \
    LAMBDA_WORKER=true \
    SEED_ON_START=false
WORKDIR /app
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "app_lib", "serve", "--host", "0.0.0.0", "--port", "8080"]

# --- lambda: lambda-app + the Lambda Web Adapter ------------------------------------------------
# The adapter forwards API Gateway / function-URL requests to the app on AWS_LWA_PORT and other
# events (SQS for the jobs worker) as POST /events.
FROM lambda-app AS lambda
COPY --from=public.ecr.aws/awsguru/aws-lambda-adapter:1.1.0 /lambda-adapter /opt/extensions/lambda-adapter
ENV AWS_LWA_PORT=8080 \
    AWS_LWA_READINESS_CHECK_PATH=/health \
    AWS_LWA_PASS_THROUGH_PATH=/events

# --- default target: the plain runtime image (the lambda stage is built only with --target) -----
FROM runtime AS default
