#!/usr/bin/env bash
# Installs everything the project needs from nothing: a virtual environment with the locked
# Python packages, and the Kafka broker jars from Maven Central. Re-running is cheap: each step
# is skipped while its inputs are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.lock
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$STAMP"
fi

KAFKA_LIB=infra/kafka/lib
KSTAMP=$KAFKA_LIB/.pom.sha256
kwant=$(sha256sum infra/kafka/pom.xml | cut -d' ' -f1)
if [ "$(cat "$KSTAMP" 2>/dev/null)" != "$kwant" ]; then
  rm -rf "$KAFKA_LIB"
  mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory=lib -DincludeScope=runtime
  echo "$kwant" > "$KSTAMP"
fi
