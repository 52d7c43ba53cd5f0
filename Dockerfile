# The runtime image: every POD Engine process (compose.yaml picks the module per service). It
# ships no simulators and no development tooling; the `dev` target adds the simulators, for the
# sim-* services of compose.yaml (the `simulators` profile).
FROM python:3.11-slim AS base
WORKDIR /app
# No bytecode written beside the code: the code is root's and read-only to the services.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1

# Tesseract and its English data for screening's reading of the text rendered into a design
# (shared/adapters/ocr.py; the generator will not start without it). Debian's packages, the
# lists removed after so the layer holds only the programs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# The services' own unprivileged user, with fixed ids so that a volume, a Kubernetes
# securityContext (runAsNonRoot needs a numeric USER) and a host folder can name them; no home,
# no shell. Everything else in the image stays root's: the user reads the code and the packages
# and writes only the two folders below (and /tmp). They are made here, owned by the user, so a
# named volume mounted on one starts out with this owner instead of root's.
RUN groupadd --system --gid 10001 pod \
    && useradd --system --uid 10001 --gid pod --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pod \
    && install -d -o pod -g pod -m 0750 /var/lib/pod-engine/state /var/lib/pod-engine/images
# The pool manager's pid records and status (POD_STATE_DIR), the generator's images and its
# progress notes (IMAGE_STORAGE_DIR).
ENV POD_STATE_DIR=/var/lib/pod-engine/state IMAGE_STORAGE_DIR=/var/lib/pod-engine/images

COPY requirements-runtime.lock requirements.lock pyproject.toml ./
RUN pip install -r requirements-runtime.lock
# Screening's unsafe-image classifier (NudeNet, AGPL-3.0: decision §50) only when asked for
# (`docker build --build-arg UNSAFE_CLASSIFIER=1`), at the development lock's versions.
ARG UNSAFE_CLASSIFIER=0
RUN if [ "$UNSAFE_CLASSIFIER" = 1 ]; then \
      pip install $(grep -iE '^(nudenet|onnxruntime|opencv-python-headless|flatbuffers|packaging)==' requirements.lock); \
    fi
COPY shared ./shared
COPY services ./services

FROM base AS dev
# The simulators need what only the development lock has (graphql-core for Shopify's).
RUN pip install -r requirements.lock
COPY simulators ./simulators
RUN pip install --no-deps .
USER 10001:10001

FROM base AS runtime
RUN pip install --no-deps .
USER 10001:10001
