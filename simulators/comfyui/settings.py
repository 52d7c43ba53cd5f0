"""The ComfyUI simulator's knobs (``SIM_COMFYUI_*``; the fault knobs of
:mod:`simulators.common` come on top)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from simulators.comfyui.catalog import ModelFolders
from simulators.comfyui.state import ComfyConfig
from simulators.common.profile import pace
from simulators.common.settings import SimSettings


class ComfySettings(SimSettings):
    """The simulated GPUs and their pace, the history kept, when dropdowns are checked, the
    models folders and the proxy's Basic auth."""

    model_config = SettingsConfigDict(env_prefix="SIM_COMFYUI_")

    # Fewer than one GPU or one remembered prompt is taken as one, as it always was.
    workers: int = 1
    # A whole sampler run, flat; 0: step_ms a step at 1024x1024, scaled with the latent's
    # pixels (unset, the profile's: SIM_PROFILE, simulators.common.profile), plus upscale_ms
    # a model upscale.
    render_ms: float = Field(default=0.0, ge=0)
    step_ms: float = Field(default_factory=lambda: pace("comfyui").step_ms, ge=0)
    upscale_ms: float = Field(default_factory=lambda: pace("comfyui").upscale_ms, ge=0)
    exec_failure_rate: float = Field(default=0.0, ge=0, le=1)
    history_max: int = 10_000
    combo_check: Literal["execution", "prompt"] = "execution"
    # Comma-separated file names replacing the default ones.
    checkpoints: str = ""
    upscale_models: str = ""
    # ``user:password`` a proxy in front asks for; unset, no login.
    basic_auth: str = ""

    def config(self) -> ComfyConfig:
        return ComfyConfig(
            workers=max(1, self.workers),
            render_ms=self.render_ms,
            step_ms=self.step_ms,
            upscale_ms=self.upscale_ms,
            exec_failure_rate=self.exec_failure_rate,
            history_max=max(1, self.history_max),
            combo_check=self.combo_check,
        )

    def folders(self) -> ModelFolders:
        return ModelFolders.of(self.checkpoints, self.upscale_models)
