"""The models the simulated account may use."""

from __future__ import annotations

Models = dict[str, tuple[str, str]]

# The models the simulated account may use (``SIM_ANTHROPIC_MODELS``, comma-separated, replaces
# them): any other name is a 404 ``not_found_error`` "model: <name>", as the API answers.
MODELS: Models = {
    "claude-opus-4-7": ("Claude Opus 4.7", "2026-06-01T00:00:00Z"),
    "claude-opus-4-6": ("Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    "claude-sonnet-4-6": ("Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    "claude-sonnet-4-5": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-sonnet-4-5-20250929": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-haiku-4-5": ("Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    "claude-haiku-4-5-20251001": ("Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
}


def models_from(raw: str) -> Models:
    """The account's models: :data:`MODELS`, or the comma-separated names of ``raw``."""
    names = [m.strip() for m in raw.split(",") if m.strip()]
    if not names:
        return MODELS
    return {m: (m, "2026-01-01T00:00:00Z") for m in names}


def model_info(models: Models, model_id: str) -> dict[str, str]:
    """A model object as ``GET /v1/models/{id}`` answers it."""
    name, created = models[model_id]
    return {"type": "model", "id": model_id, "display_name": name, "created_at": created}
