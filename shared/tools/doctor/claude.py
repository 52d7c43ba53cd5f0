"""Claude: the key is accepted and the model the generator uses is one it may use."""

from __future__ import annotations

import os

import anthropic

from shared.adapters.vendors.claude import ClaudeClient, ClaudeSettings, claude_client
from shared.platform.errors import ConfigError
from shared.platform.settings import load_settings
from shared.tools.doctor import Check


async def checks() -> list[Check]:
    if not os.environ.get("CLAUDE_API_KEY"):
        return [
            Check.skipped(
                "claude.key",
                "CLAUDE_API_KEY unset here: not checked (under make up the simulator stands in)",
            )
        ]
    try:
        settings = load_settings(ClaudeSettings)
    except ConfigError as exc:
        return [Check.failed("claude.settings", exc.message, "correct the settings named")]
    client = claude_client(settings)
    try:
        return await _model(client)
    finally:
        await client.aclose()


async def _model(client: ClaudeClient) -> list[Check]:
    where, model = client.base_url, client.model
    try:
        found = await client.model_info()
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
        return [
            Check.failed(
                "claude.key",
                f"the API at {where} refused the key ({exc.status_code})",
                "set CLAUDE_API_KEY to a key from the Anthropic console",
            )
        ]
    except anthropic.NotFoundError:
        known = await client.known_models()
        return [
            Check.passed("claude.key", f"accepted by {where}"),
            Check.failed(
                "claude.model",
                f"the API does not know {model!r}"
                + (f"; this key may use: {', '.join(known)}" if known else ""),
                "set CLAUDE_MODEL to one of the models this key may use",
            ),
        ]
    except anthropic.APIConnectionError as exc:
        return [
            Check.failed(
                "claude.key",
                f"cannot reach {where} ({type(exc).__name__})",
                "check the network and ANTHROPIC_BASE_URL (unset for api.anthropic.com)",
            )
        ]
    except anthropic.APIStatusError as exc:
        return [
            Check.failed(
                "claude.key",
                f"{where} answered {exc.status_code}",
                "try again later; see https://status.anthropic.com",
            )
        ]
    return [
        Check.passed("claude.key", f"accepted by {where}"),
        Check.passed("claude.model", f"{found.id} ({found.display_name})"),
    ]
