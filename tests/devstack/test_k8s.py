"""deploy/k8s checked statically (no cluster here): generated from the registry, every stage
deployed and scaled on its own consumer group's input topics, every setting a process reads
delivered (secrets only by reference), every object valid against its schema (Kubernetes' own,
KEDA's CRDs) offline, and nothing that a second `kubectl apply` would refuse."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import k8s
from devstack.k8s import K8S_DIR, render, to_yaml
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.contract.topics import CHANNELS, DEFAULT_CHANNEL, PUBLISHERS, STAGES, stages_for
from shared.pipeline.runner import RunnerSettings
from tests.support.envnames import known_env_names
from tests.support.k8s_schemas import KUBERNETES_VERSIONS, validate

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


def _parked(topic: str) -> bool:
    return ".retry." in topic or topic.endswith(".dlq")


def test_every_stage_runs_its_module_and_scales_on_its_input_topics() -> None:
    config = load("config.yaml")[0]["data"]
    deployed = _deployed()
    assert set(deployed) == set(STAGES)
    assert set(load("kustomization.yaml")[0]["resources"]) >= {"stages.yaml", "scaling.yaml"}
    base = {d["metadata"]["name"] for d in load("stages.yaml")}
    assert base == {name.replace("_", "-") for name in stages_for([DEFAULT_CHANNEL])}
    prefix = config.get("GROUP_ID_PREFIX", RunnerSettings().group_id_prefix)
    [auth] = [d for d in load("scaling.yaml") if d["kind"] == "TriggerAuthentication"]
    thresholds = {}
    for name, (deployment, scaled) in deployed.items():
        stage = STAGES[name]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", stage.module]
        env = {e["name"]: e for e in container["env"]}
        if stage.channel is not None:
            assert env["CHANNEL"]["value"] == stage.channel
        triggers = scaled["spec"]["triggers"]
        # One trigger per input topic: the priority bands, not a retry topic (parked until
        # due: lag no replica can work off) nor a dead-letter topic.
        topics = [t["metadata"]["topic"] for t in triggers]
        assert topics == [t for t in stage.inputs if not _parked(t)]
        assert topics and not set(topics) & {*stage.retry_topics, stage.dlq}
        for trigger in triggers:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            # The group the runner joins (shared/pipeline/runner/core.py): KEDA reads that group's
            # lag.
            assert meta["consumerGroup"] == f"{prefix}.{stage.name}"
            # The broker as the stage's container has it (KEDA resolves env and envFrom).
            assert "bootstrapServers" not in meta
            assert meta["bootstrapServersFromEnv"] in env
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
            thresholds[name] = int(meta["lagThreshold"])
        # More replicas than partitions would sit idle.
        assert scaled["spec"]["maxReplicaCount"] == int(config["KAFKA_PARTITIONS"])
        assert scaled["spec"]["minReplicaCount"] >= 1
    # A GPU stage keeps busy with a handful of jobs; the monitor folds thousands a second.
    assert thresholds["generator"] < thresholds["printify"] < thresholds["monitor"]
    for channel in CHANNELS:
        if channel != DEFAULT_CHANNEL:
            component = load(f"channels/{channel}/kustomization.yaml")[0]
            assert component["kind"] == "Component"
            assert PUBLISHERS[channel].name in deployed


def _pods() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in K8S_DIR.rglob("*.yaml"):
        docs += load(str(path.relative_to(K8S_DIR)))
    return [d["spec"]["template"]["spec"] for d in docs if "template" in d.get("spec", {})]


def _containers() -> list[dict[str, Any]]:
    out = []
    for pod in _pods():
        out += pod.get("initContainers", []) + pod["containers"]
    return out


def test_keda_authenticates_to_the_broker_from_the_pods_secret() -> None:
    [auth] = [d for d in load("scaling.yaml") if d["kind"] == "TriggerAuthentication"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    # The kafka scaler's parameters (KEDA 2.x: pkg/scalers/kafka_scaler.go's authParams).
    assert set(refs) == {"sasl", "tls", "username", "password", "ca"}
    assert {r["name"] for r in refs.values()} == {"pod-secrets"}
    # The user, password and CA are the keys the pods read them from.
    by_key = {}
    for container in _containers():
        for entry in container["env"]:
            secret = entry.get("valueFrom", {}).get("secretKeyRef")
            if secret:
                by_key[secret["key"]] = entry["name"]
    assert by_key.get(refs["ca"]["key"]) == refs["ca"]["key"] == "KAFKA_SSL_CA_PEM"
    # KEDA logs in as the monitor, whose ACLs describe every topic and stage group: the
    # password is the one the monitor's pods log in with.
    [monitor] = [c for c in _containers() if c["name"] == "monitor"]
    password = next(e for e in monitor["env"] if e["name"] == "KAFKA_SASL_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["key"] == refs["password"]["key"]
    assert refs["username"]["key"] == "KEDA_KAFKA_USERNAME"


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
    pod = api["spec"]["template"]["spec"]
    [container] = pod["containers"]
    app = create_app(ApiSettings(database_url="postgresql://unused@127.0.0.1/none"))
    paths = set(app.openapi()["paths"])
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert {live, ready} <= paths and live != ready
    service = by_kind(load("api.yaml"), "Service")["api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    # Topics and migrations before each API pod takes traffic, as an init container.
    [init] = pod["initContainers"]
    assert init["command"] == ["python", "-m", "shared.tools.init"]


def test_a_second_apply_changes_nothing_it_may_not() -> None:
    """`kubectl apply -k` twice, or after a new image: a Job's pod template is immutable (the
    second apply fails), so there is none; every kind here is updated in place."""
    kinds = set()
    for path in K8S_DIR.rglob("*.yaml"):
        rel = path.relative_to(K8S_DIR)
        if rel.parts[0] == "doctor":
            continue  # a one-off preflight, applied on its own and deleted after (README)
        kinds |= {d["kind"] for d in load(str(rel))}
    kinds -= {"Kustomization", "Component"}
    assert kinds == {"ConfigMap", "Deployment", "Service", "ScaledObject", "TriggerAuthentication"}
    (base,) = load("kustomization.yaml")
    assert not any("doctor" in r for r in base["resources"])


def test_the_preflight_pod_has_every_setting_and_runs_pod_doctor() -> None:
    (pod,) = load("doctor/pod.yaml")
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["pod", "--text", "doctor"]
    assert pod["spec"]["restartPolicy"] == "Never"
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": k8s.CONFIG, "secretRef": k8s.SECRETS}


def test_every_setting_a_process_reads_reaches_it() -> None:
    """Each container gets, from its settings classes: every secret by reference to pod-secrets
    (optional unless required), every required setting by name (the pod does not start without
    it), the rest through pod-config (envFrom); COMFYUI_API_URL, the shops' ids and the broker
    included, and a new setting without a default cannot be forgotten."""
    checked = 0
    for container in _containers():
        module = container["command"][-1]
        env = {e["name"]: e for e in container["env"]}
        channel = env["CHANNEL"]["value"] if "CHANNEL" in env else None
        settings = k8s.settings_of(module, channel)
        names = {f.upper() for cls in settings for f in cls.model_fields}
        required = {
            f.upper() for cls in settings for f, i in cls.model_fields.items() if i.is_required()
        } | (set(k8s.REQUIRED) & names)
        secrets = {
            f.upper()
            for cls in settings
            for f, i in cls.model_fields.items()
            if "SecretStr" in str(i.annotation)
        }
        assert {"configMapRef": {"name": "pod-config"}} in container["envFrom"]
        for name in names:
            ref = env.get(name, {}).get("valueFrom", {})
            if name == "KAFKA_SASL_PASSWORD":
                # Its own principal's (shared.pipeline.acls), the super user's for init.
                assert ref["secretKeyRef"]["key"].startswith("KAFKA_"), module
                assert not ref["secretKeyRef"].get("optional"), module
            elif name in secrets:
                assert ref["secretKeyRef"]["key"] == name, (module, name)
                assert ref["secretKeyRef"].get("optional", False) == (name not in required)
            elif name in required:
                assert ref == {"configMapKeyRef": {"name": "pod-config", "key": name}}, name
        checked += 1
    assert checked == len(STAGES) + 2  # every stage, the API and its init container
    # What the issue found missing, now named in the pods that read them.
    by_container = {c["name"]: {e["name"] for e in c["env"]} for c in _containers()}
    assert "COMFYUI_API_URL" in by_container["generator"]
    assert "ETSY_SHOP_ID" in by_container["publisher-etsy"]
    assert "SHOPIFY_SHOP_DOMAIN" in by_container["publisher-shopify"]
    # Every entry of the explicit list is a setting some process reads (none left stale).
    read = {n for names in by_container.values() for n in names}
    assert set(k8s.REQUIRED) <= read, set(k8s.REQUIRED) - read


def test_a_production_cluster_keeps_three_copies_of_every_topic() -> None:
    from shared.platform.settings import InitSettings

    data = load("config.yaml")[0]["data"]
    # The settings shared.tools.init creates the topics with (read from pod-config).
    settings = InitSettings(**{k.lower(): v for k, v in data.items() if k.startswith("KAFKA_")})
    assert settings.kafka_replication_factor == 3
    assert settings.min_insync_replicas == 2


def test_the_pods_run_as_the_images_user_writing_only_its_folders() -> None:
    from tests.test_compose import dockerfile_stages

    stages = dockerfile_stages()
    [user] = [args for op, args in stages["runtime"] if op == "USER"]
    assert user == f"{k8s.RUN_AS}:{k8s.RUN_AS}"
    env: dict[str, str] = {}
    for op, args in stages["base"]:
        if op == "ENV":
            env |= dict(pair.split("=", 1) for pair in args.split())
    assert (env["POD_STATE_DIR"], env["IMAGE_STORAGE_DIR"]) == (k8s.STATE_DIR, k8s.IMAGES_DIR)
    for pod in _pods():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == k8s.RUN_AS
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            assert set(mounts) == {k8s.STATE_DIR, k8s.IMAGES_DIR, "/tmp"}
            assert all("emptyDir" in v for v in mounts.values())


def test_every_object_is_valid_against_its_schema() -> None:
    """Offline: the Kubernetes objects against the Kubernetes JSON schemas (strict: no unknown
    field), KEDA's against its CRDs' schema."""
    docs = [d for rel, ds in render().items() for d in ds if "kustomization" not in rel]
    assert {d["kind"] for d in docs} >= {"Deployment", "ScaledObject", "TriggerAuthentication"}
    for doc in docs:
        validate(doc)


def test_the_validation_catches_what_a_cluster_would_refuse() -> None:
    deployment = by_kind(load("stages.yaml"), "Deployment")["generator"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"] = {
        "nmae": "pod-config"
    }
    with pytest.raises(AssertionError, match="nmae"):
        validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = "pod"
    with pytest.raises(AssertionError, match="runAsUser"):
        validate(broken)
    scaled = by_kind(load("scaling.yaml"), "ScaledObject")["generator"]
    for field, value in (("maxReplicaCount", "six"), ("triggerz", []), ("scaleTargetRef", None)):
        broken = yaml.safe_load(yaml.safe_dump(scaled))
        if value is None:
            del broken["spec"][field]
        else:
            broken["spec"][field] = value
        with pytest.raises(AssertionError, match=field):
            validate(broken)
    [auth] = [d for d in load("scaling.yaml") if d["kind"] == "TriggerAuthentication"]
    broken = yaml.safe_load(yaml.safe_dump(auth))
    del broken["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(AssertionError, match="key"):
        validate(broken)
    assert len(KUBERNETES_VERSIONS) == 2


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


def seller_config() -> dict[str, str]:
    """What a seller's overlay adds to pod-config (README, On Kubernetes): the required settings
    no default fits, for the base and every channel component."""
    return {
        "COMFYUI_API_URL": "http://comfyui.gpu.svc:8188",
        "IMAGE_STORAGE_URL": "s3://my-shop-art/images",
        "PUBLISH_CHANNELS": ",".join(CHANNELS),
        "SHOPIFY_SHOP_DOMAIN": "my-shop.myshopify.com",
        "ETSY_SHOP_ID": "12345678",
        "ETSY_SHIPPING_PROFILE_ID": "9001",
        "META_CATALOG_ID": "1234567890123456",
    }


def _required_refs(kind: str) -> set[str]:
    """The keys of pod-config (``configMapKeyRef``) or pod-secrets (``secretKeyRef``) that
    some container cannot start without."""
    return {
        e["valueFrom"][kind]["key"]
        for c in _containers()
        for e in c["env"]
        if kind in e.get("valueFrom", {}) and not e["valueFrom"][kind].get("optional")
    }


def test_the_readme_names_every_setting_a_cluster_must_give() -> None:
    from tests.test_compose import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### On Kubernetes") :]
    section = section[: section.index("\n## ")]
    base = set(load("config.yaml")[0]["data"])
    to_give = (_required_refs("configMapKeyRef") - base) | _required_refs("secretKeyRef")
    assert _required_refs("configMapKeyRef") - base == set(seller_config()) - {"PUBLISH_CHANNELS"}
    missing = [name for name in sorted(to_give) if f"`{name}`" not in section]
    assert not missing, missing


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
                # As the README's overlay does: the seller's settings merged into pod-config.
                "configMapGenerator": [
                    {
                        "name": "pod-config",
                        "behavior": "merge",
                        "literals": [f"{k}={v}" for k, v in seller_config().items()],
                    }
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
    # Every key a pod cannot start without is in the ConfigMap the pods are given.
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    missing = _required_refs("configMapKeyRef") - set(config["data"])
    assert not missing, missing
    for doc in docs:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod["containers"]:
                assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        validate(doc)


def test_the_database_url_is_a_secret_every_database_user_gets_and_the_preflight_checks() -> None:
    """The cluster runs no PostgreSQL of ours: DATABASE_URL (its role's password inside) comes
    from pod-secrets, required, to every container that reads it (the init containers that
    migrate included), and the preflight pod, which checks that its role is no superuser
    (``platform.database_role``), gets all of pod-secrets."""
    readers = [
        entry
        for container in _containers()
        for entry in container["env"]
        if entry["name"] == "DATABASE_URL"
    ]
    assert len(readers) >= len(STAGES) + 1  # every stage and the API
    for entry in readers:
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref == {"name": k8s.SECRETS, "key": "DATABASE_URL"}, entry
    assert "DATABASE_URL" in k8s.REQUIRED
    (pod,) = load("doctor/pod.yaml")
    (container,) = pod["spec"]["containers"]
    assert {"secretRef": {"name": k8s.SECRETS, "optional": True}} in container["envFrom"]


def test_each_process_logs_in_to_the_broker_as_its_own_principal() -> None:
    """Each stage's pods as the stage, the API's as ``api``, with that principal's password;
    the init container as the super user, holding every principal's password to set it."""
    from shared.pipeline.acls import principals, stage_credential_env

    logins = {}
    for container in _containers():
        env = {e["name"]: e for e in container["env"]}
        user = env["KAFKA_SASL_USERNAME"]
        password = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        if container["name"] == "init":
            assert user["valueFrom"]["secretKeyRef"]["key"] == "KAFKA_ADMIN_USERNAME"
            assert password == "KAFKA_ADMIN_PASSWORD"
            assert {stage_credential_env(p) for p in principals()} <= set(env)
            continue
        logins[container["name"]] = (user["value"], password)
        if user["value"] != "api":  # pod doctor checks as the API does
            assert not [n for n in env if n.startswith("KAFKA_SASL_PASSWORD_")], container["name"]
    for name, (user, password) in logins.items():
        assert password == stage_credential_env(user), name
    stages = {k8s.dns_name(s): s.name for s in STAGES.values()}
    assert {n: u for n, (u, _) in logins.items() if n in stages} == {
        n: stages[n] for n in logins if n in stages
    }
    assert logins["api"][0] == "api"
    assert load("config.yaml")[0]["data"]["KAFKA_ACLS"] == "true"
