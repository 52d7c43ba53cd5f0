"""The pool manager hands each stage process its own Kafka login and no other stage's."""

from __future__ import annotations

from services.pool.supervisor import stage_env
from shared.pipeline.acls import stage_credential_env


def test_a_stage_gets_its_own_login_and_no_other_password() -> None:
    manager = {
        "KAFKA_SASL_USERNAME": "pool",
        "KAFKA_SASL_PASSWORD": "pool-secret",
        stage_credential_env("generator"): "gen-secret",
        stage_credential_env("printify"): "printify-secret",
        "OTHER": "kept",
    }
    env = stage_env(manager, "generator")
    assert env["KAFKA_SASL_USERNAME"] == "generator"
    assert env["KAFKA_SASL_PASSWORD"] == "gen-secret"
    assert env["OTHER"] == "kept"
    assert "printify-secret" not in env.values()
    assert not [k for k in env if k.startswith("KAFKA_SASL_PASSWORD_")]


def test_without_a_stage_login_the_managers_is_inherited() -> None:
    env = stage_env({"KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "p"}, "monitor")
    assert (env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_PASSWORD"]) == ("svc", "p")
