"""The base of every simulator's settings class: its ``SIM_<VENDOR>_*`` knobs, read once from
the environment when the app is built."""

from __future__ import annotations

from typing import Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimSettings(BaseSettings):
    """Environment only (no config file: a simulator is configured by whoever starts it); an
    empty variable means the default, as an unset one does."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    @classmethod
    def load(cls) -> Self:
        """Read the environment; a bad value stops the simulator with the variable named."""
        try:
            return cls()
        except ValidationError as exc:
            prefix = str(cls.model_config.get("env_prefix", ""))
            problems = "; ".join(
                f"{prefix}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise SystemExit(problems) from exc
