# The runtime image: every POD Engine process (compose.yaml picks the module per service). It
# ships no simulators and no development tooling; the `dev` target adds the simulators, for the
# sim-* services of compose.yaml.
FROM python:3.11-slim AS base
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements-runtime.lock requirements.lock pyproject.toml ./
RUN pip install -r requirements-runtime.lock
COPY shared ./shared
COPY services ./services

FROM base AS dev
# The simulators need what only the development lock has (graphql-core for Shopify's).
RUN pip install -r requirements.lock
COPY simulators ./simulators
RUN pip install --no-deps .
USER nobody

FROM base AS runtime
RUN pip install --no-deps .
USER nobody
