"""deploy/k8s checked statically (no cluster here): generated from the registry, every stage
deployed and scaled on its own consumer group, secrets only by reference, every environment
name one the services read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.k8s import K8S_DIR, render, to_yaml
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.runner import RunnerSettings
from shared.topics import CHANNELS, DEFAULT_CHANNEL, PUBLISHERS, STAGES, stages_for
from tests.support.envnames import known_env_names

pytestmark = pytest.mark.unit


def load(rel: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S_DIR / rel).read_text()) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_manifests_are_generated_from_the_registry() -> None:
    files = render()
    on_disk = {str(p.relative_to(K8S_DIR)) for p in K8S_DIR.rglob("*.yaml")}
    assert on_disk == set(files), "deploy/k8s is stale: run `make schemas`"
    for rel, docs in files.items():
        assert (K8S_DIR / rel).read_text() == to_yaml(docs), f"{rel} is stale: make schemas"


def _deployed() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """stage name -> (its Deployment, its ScaledObject), base and channel components."""
    docs = load("stages.yaml") + load("scaling.yaml")
    for channel in CHANNELS:
        if channel != DEFAULT_CHANNEL:
            docs += load(f"channels/{channel}/publisher.yaml")
    deployments = by_kind(docs, "Deployment")
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    found = {}
    for name, deployment in deployments.items():
        stage = deployment["spec"]["template"]["metadata"]["labels"]["pod-engine/stage"]
        found[stage] = (deployment, scaled[name])
    return found


def test_every_stage_runs_its_module_and_scales_on_its_own_group() -> None:
    config = load("config.yaml")[0]["data"]
    deployed = _deployed()
    assert set(deployed) == set(STAGES)
    assert set(load("kustomization.yaml")[0]["resources"]) >= {"stages.yaml", "scaling.yaml"}
    base = {d["metadata"]["name"] for d in load("stages.yaml")}
    assert base == {name.replace("_", "-") for name in stages_for([DEFAULT_CHANNEL])}
    prefix = config.get("GROUP_ID_PREFIX", RunnerSettings().group_id_prefix)
    for name, (deployment, scaled) in deployed.items():
        stage = STAGES[name]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", stage.module]
        env = {e["name"]: e for e in container["env"]}
        if stage.channel is not None:
            assert env["CHANNEL"]["value"] == stage.channel
        [trigger] = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        # The group the runner joins (shared/runner/core.py): KEDA reads that group's lag.
        assert trigger["metadata"]["consumerGroup"] == f"{prefix}.{stage.name}"
        assert "topic" not in trigger["metadata"]  # every band and delay topic of the group
        # More replicas than partitions would sit idle.
        assert scaled["spec"]["maxReplicaCount"] == int(config["KAFKA_PARTITIONS"])
        assert scaled["spec"]["minReplicaCount"] >= 1
    for channel in CHANNELS:
        if channel != DEFAULT_CHANNEL:
            component = load(f"channels/{channel}/kustomization.yaml")[0]
            assert component["kind"] == "Component"
            assert PUBLISHERS[channel].name in deployed


def _containers() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in K8S_DIR.rglob("*.yaml"):
        docs += load(str(path.relative_to(K8S_DIR)))
    out = []
    for d in docs:
        spec = d.get("spec", {})
        template = spec.get("template", {}).get("spec", {})
        out += template.get("containers", [])
    return out


def test_secrets_only_by_reference_and_every_name_is_read_by_a_service() -> None:
    known = known_env_names()
    config = load("config.yaml")[0]
    assert config["data"]["SCALING"] == "platform"  # /scale answers 409: KEDA scales
    assert set(config["data"]) <= known, set(config["data"]) - known
    for path in K8S_DIR.rglob("*.yaml"):
        kinds = {d["kind"] for d in load(str(path.relative_to(K8S_DIR)))}
        assert "Secret" not in kinds, path  # referenced, never written here
    for container in _containers():
        for entry in container["env"]:
            assert entry["name"] in known, (container["name"], entry["name"])
            if entry["name"] in ("DATABASE_URL",) or entry["name"].endswith(
                ("_KEY", "_KEYS", "_TOKEN", "_SECRET", "_PASSWORD")
            ):
                assert "value" not in entry, entry
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "pod-secrets"


def test_the_api_is_probed_on_routes_it_serves_and_init_runs_first() -> None:
    api = by_kind(load("api.yaml"), "Deployment")["api"]
    [container] = api["spec"]["template"]["spec"]["containers"]
    app = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1/none"))
    paths = set(app.openapi()["paths"])
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert {live, ready} <= paths and live != ready
    service = by_kind(load("api.yaml"), "Service")["api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    [job] = load("init-job.yaml")
    assert job["kind"] == "Job"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "shared.init"


def test_every_environment_name_in_compose_is_read_by_a_service() -> None:
    from tests.test_compose import ROOT

    known = known_env_names()
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    checked = 0
    for name, svc in services.items():
        command = svc.get("command") or []
        # The project's own processes (simulators read SIM_* of their own; the rest are
        # third-party images with their own settings).
        if len(command) == 3 and command[2].startswith(("services.", "shared.")):
            unknown = set(svc.get("environment", {})) - known
            assert not unknown, (name, unknown)
            checked += 1
    assert checked >= 3  # init, api, workers


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_the_base_and_every_channel_component(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    channels = [c for c in CHANNELS if c != DEFAULT_CHANNEL]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S_DIR, overlay)],
                "components": [
                    os.path.relpath(K8S_DIR / "channels" / c, overlay) for c in channels
                ],
            }
        )
    )
    built = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {"api", *(n.replace("_", "-") for n in STAGES)}
    assert sum(d["kind"] == "ScaledObject" for d in docs) == len(STAGES)
