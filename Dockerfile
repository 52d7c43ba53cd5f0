# One image for every POD Engine process; compose.yaml picks the module per service.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock pyproject.toml ./
RUN pip install -r requirements.lock
COPY shared ./shared
COPY services ./services
COPY simulators ./simulators
RUN pip install --no-deps .
USER nobody
