"""The Anthropic simulator's knobs (``SIM_ANTHROPIC_*``; the fault knobs of
:mod:`simulators.common` come on top)."""

from __future__ import annotations

import hashlib

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.anthropic.messages import REFUSE_MARKER
from simulators.anthropic.models import Models, models_from
from simulators.common.profile import pace
from simulators.common.settings import SimSettings


class AnthropicSettings(SimSettings):
    """The rate limit, the valid API keys, the account's models and the refusal marker."""

    model_config = SettingsConfigDict(env_prefix="SIM_ANTHROPIC_")

    # Requests per minute per API key; 0 means unlimited.
    rpm: int = Field(default=0, ge=0)
    # Comma-separated; unset, any non-empty key is valid.
    keys: str = ""
    # Comma-separated model names replacing the default ones.
    models: str = ""
    refuse_marker: str = REFUSE_MARKER
    # The model's pace: an answer takes the time to its first token plus its output tokens at
    # this speed (0: at once); unset, the profile's (SIM_PROFILE, simulators.common.profile).
    ttft_ms: float = Field(default_factory=lambda: pace("anthropic").ttft_ms, ge=0)
    output_tokens_per_s: float = Field(
        default_factory=lambda: pace("anthropic").output_tokens_per_s, ge=0
    )

    def key_digests(self) -> frozenset[str]:
        """Digests of the valid keys (the simulator never holds a key itself)."""
        return frozenset(
            hashlib.sha256(k.strip().encode()).hexdigest()
            for k in self.keys.split(",")
            if k.strip()
        )

    def model_table(self) -> Models:
        return models_from(self.models)
