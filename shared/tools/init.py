"""``python -m shared.tools.init``: create the topics and apply the migrations, then exit; with
``KAFKA_ACLS=true`` (run as the broker's super user) also create each service's SCRAM login
(from ``KAFKA_SASL_PASSWORD_<PRINCIPAL>``) and apply the ACL table of :mod:`shared.pipeline.acls`.

For deployments where the broker and database are given (compose, production); ``make up`` does
the same itself.
"""

from __future__ import annotations

import logging
import sys

from confluent_kafka.admin import AdminClient

from shared.contract.topics import ensure_topics, wait_for_broker
from shared.pipeline.acls import (
    PrincipalPasswordSettings,
    apply_acls,
    ensure_users,
    principal_passwords,
    principals,
    stage_credential_env,
)
from shared.platform.db import migrate
from shared.platform.errors import ConfigError
from shared.platform.logs import setup_logging
from shared.platform.settings import InitSettings, load_settings

logger = logging.getLogger(__name__)


# A login's password, at least: a deployment's secrets, not a word.
MIN_PASSWORD = 16


def check_passwords(settings: InitSettings, passwords: dict[str, str]) -> None:
    """With KAFKA_ACLS, every principal's password and init's own (the super user's) must be
    set and long enough: a service without one could not log in, and an empty super-user
    password would open the broker. Raises ConfigError naming the variables, not the values."""
    admin = settings.kafka_sasl_password
    problems = [
        stage_credential_env(p) for p in principals() if len(passwords.get(p, "")) < MIN_PASSWORD
    ]
    if admin is None or len(admin.get_secret_value()) < MIN_PASSWORD:
        problems.insert(0, "KAFKA_SASL_PASSWORD (the super user's, KAFKA_ADMIN_PASSWORD)")
    if problems:
        raise ConfigError(
            f"KAFKA_ACLS is on but these passwords are unset or shorter than {MIN_PASSWORD} "
            f"characters: {', '.join(problems)}"
        )


def main() -> int:
    """Topics and migrations; exit 0 when both are in place, 2 when the configuration is wrong
    (a bad setting, credentials the broker refuses), 1 when the broker never answered."""
    setup_logging("init")
    try:
        settings = load_settings(InitSettings)
        passwords = principal_passwords(load_settings(PrincipalPasswordSettings))
        if settings.kafka_acls:
            check_passwords(settings, passwords)
        # With the settings' security protocol, SASL and TLS: a secured broker answers nothing
        # else.
        wait_for_broker(settings.client_config(), timeout=settings.init_kafka_wait_s)
    except ConfigError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    except TimeoutError as exc:
        logger.error("cannot start: %s", exc)
        return 1
    admin = AdminClient(settings.client_config())
    outcome = ensure_topics(
        admin,
        default_partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.min_insync_replicas,
    )
    logger.info("topics ready changed=%s", {k: v for k, v in outcome.items() if v != "ok"})
    if settings.kafka_acls:
        # As the broker's super user: each service's login and the ACL table (shared.pipeline.acls).
        ensure_users(admin, passwords)
        logger.info("acls applied outcome=%s users=%s", apply_acls(admin), sorted(passwords))
    logger.info("migrations applied names=%s", migrate(settings.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
