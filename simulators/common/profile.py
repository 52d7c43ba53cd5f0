"""How fast the vendors are: ``SIM_PROFILE=flat`` (the default: as fast as this machine goes,
what the functional tests want) or ``SIM_PROFILE=realistic`` (the vendors' own pace, what
``bench/share.py`` measures the engine's share of a job against).

The realistic figures, with where they come from (checked 2026-12-07). Where a vendor publishes
no figure, the value is a deliberately modest estimate and says so; a variable set explicitly
(``SIM_<NAME>_LATENCY_MS``, ``SIM_COMFYUI_STEP_MS``, ...) always wins over the profile.

- Anthropic (Messages API, a Sonnet-class model, no streaming): an answer takes the time to the
  first token plus its output tokens at the model's output speed. Anthropic's "Reducing latency"
  page (https://platform.claude.com/docs/en/test-and-evaluate/strengthen-guardrails/reduce-latency)
  defines both measures (TTFT, output tokens per second) without figures; published measurements
  of Sonnet 4 put TTFT at 0.4 s (p50) to 1.2 s (p95) and output at ~90 tokens/s. We take
  800 ms and 60 tokens/s: slower than the median, so a job's vendor time is not flattered.
- ComfyUI (self-hosted, SDXL base at 1024x1024, 30 euler steps, then 4x-UltraSharp): SD.Next's
  standard benchmark (https://vladmandic.github.io/sdnext-docs/Benchmark, RTX 4090) gives
  ~73 it/s for SD 1.5 at 512 px, batch 4; SDXL at 1024 px has four times the pixels and a
  UNet ~2.6 times larger, which lands at 8-10 it/s on the same card, the figure ComfyUI users
  report. We take 120 ms a step at 1024x1024 (8.3 it/s, an RTX 4090), scaled with the latent's
  pixels, so the default workflow samples in 3.6 s; an ESRGAN 4x upscale to 4096 px about
  1.5 s. ComfyUI's HTTP calls are on the LAN: 20 ms.
- Printify (https://developers.printify.com/, API v1): no latency figure is published; calls
  measured from Europe answer in 200-600 ms, so 300 ms a call. Publishing to a Printify-managed
  channel (Etsy, Shopify, ...) is asynchronous: the call returns and the channel lists the
  product later, "a few minutes" in Printify's help centre; we take 120 s. A custom
  integration's ``product:publish:started`` webhook comes 2 s after the publish call (estimate).
- Shopify Admin GraphQL, Etsy Open API v3, TikTok Shop, Meta Graph API: none publishes a
  latency figure; 250-400 ms a call (estimates, in line with what their status pages chart).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum


class Profile(StrEnum):
    FLAT = "flat"
    REALISTIC = "realistic"


def current() -> Profile:
    """``SIM_PROFILE`` (unset or empty: flat); another value stops the simulator, named."""
    raw = os.environ.get("SIM_PROFILE", "").strip().lower() or Profile.FLAT.value
    try:
        return Profile(raw)
    except ValueError:
        choices = ", ".join(p.value for p in Profile)
        raise SystemExit(f"SIM_PROFILE: expected one of {choices}, got {raw!r}") from None


@dataclass(frozen=True)
class Pace:
    """One vendor's realistic pace (milliseconds unless named otherwise)."""

    # Every HTTP call's round trip, before the vendor does anything particular.
    call_ms: float = 0.0
    # Anthropic: time to the first token, and output tokens per second after it.
    ttft_ms: float = 0.0
    output_tokens_per_s: float = 0.0
    # ComfyUI: one sampler step at 1024x1024 (scaled with the latent's pixels), one model
    # upscale.
    step_ms: float = 0.0
    upscale_ms: float = 0.0
    # Printify: a managed channel listing a published product; a webhook's delivery.
    publish_ms: float = 0.0
    webhook_delay_ms: float = 0.0


REALISTIC: dict[str, Pace] = {
    "anthropic": Pace(ttft_ms=800.0, output_tokens_per_s=60.0),
    "comfyui": Pace(call_ms=20.0, step_ms=120.0, upscale_ms=1500.0),
    "printify": Pace(call_ms=300.0, publish_ms=120_000.0, webhook_delay_ms=2000.0),
    "shopify": Pace(call_ms=300.0),
    "etsy": Pace(call_ms=350.0),
    "tiktok": Pace(call_ms=400.0),
    "meta": Pace(call_ms=400.0),
}


def pace(name: str) -> Pace:
    """The pace of simulator ``name`` under the current profile (all zeros when flat)."""
    if current() is Profile.REALISTIC:
        return REALISTIC.get(name, Pace())
    return Pace()
