"""``pod``: the command-line tool (submit, status, jobs, up, webhooks register).

Talks to the API at ``POD_API_URL`` (default http://127.0.0.1:3000) with ``POD_API_KEY`` as the
bearer key when the API requires one. Output is JSON on stdout, so it pipes into ``jq``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx


def _client() -> httpx.Client:
    headers = {}
    key = os.environ.get("POD_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    base = os.environ.get("POD_API_URL", "http://127.0.0.1:3000")
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def _emit(resp: httpx.Response) -> int:
    try:
        body: Any = resp.json()
    except ValueError:
        body = {"status": resp.status_code, "body": resp.text}
    sys.stdout.write(json.dumps(body, indent=2) + "\n")
    return 0 if resp.is_success else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pod`` script."""
    parser = argparse.ArgumentParser(prog="pod", description="POD Engine command line")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit a design job")
    s.add_argument("--theme", required=True)
    s.add_argument("--style", required=True)
    s.add_argument("--niche", required=True)
    s.add_argument("--prompt")
    s.add_argument("--types", default="tshirt", help="product types, comma-separated")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
    s.add_argument("--auto-publish", action="store_true")
    s.add_argument("--idempotency-key")

    st = sub.add_parser("status", help="show one job with its images, products and log")
    st.add_argument("job_id")

    j = sub.add_parser("jobs", help="list jobs, newest first")
    j.add_argument("--status")
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--cursor")

    sub.add_parser("up", help="run the whole stack (same as `make up`)")

    w = sub.add_parser(
        "webhooks",
        help="register the API's /webhooks/printify with Printify (PRINTIFY_API_KEY, "
        "PRINTIFY_WEBHOOK_SECRET)",
    )
    w.add_argument("action", choices=["register"])
    w.add_argument("--url", required=True, help="public URL of POST /webhooks/printify")
    w.add_argument("--shop", help="one shop id (default: every custom-integration shop)")

    args = parser.parse_args(argv)
    if args.command == "up":
        try:
            from devstack.stack import main as up
        except ImportError:
            sys.stderr.write(
                "pod: up runs from a source checkout (devstack/), not the runtime image\n"
            )
            return 2
        up()
        return 0
    if args.command == "webhooks":
        return _register_webhooks(args.url, args.shop)
    with _client() as client:
        try:
            if args.command == "submit":
                body: dict[str, Any] = {
                    "theme": args.theme,
                    "style": args.style,
                    "niche": args.niche,
                    "productTypes": [t.strip() for t in args.types.split(",") if t.strip()],
                    "count": args.count,
                    "autoPublish": args.auto_publish,
                    "priority": args.priority,
                }
                if args.prompt:
                    body["prompt"] = args.prompt
                headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
                return _emit(client.post("/jobs", json=body, headers=headers))
            if args.command == "status":
                return _emit(client.get(f"/jobs/{args.job_id}"))
            params = {"limit": args.limit} | {
                k: v for k, v in (("status", args.status), ("cursor", args.cursor)) if v
            }
            return _emit(client.get("/jobs", params=params))
        except httpx.HTTPError as exc:
            sys.stderr.write(f"pod: cannot reach the API at {client.base_url}: {exc}\n")
            return 2


def _register_webhooks(url: str, shop: str | None) -> int:
    from pydantic import ValidationError

    from shared.errors import PodError
    from shared.vendors.printify_webhooks import WebhookRegistrationSettings, register_all

    try:
        settings = WebhookRegistrationSettings()
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
        sys.stderr.write(f"pod: webhooks register needs {missing}\n")
        return 2
    try:
        registered = asyncio.run(register_all(settings, url, shop))
    except PodError as exc:
        sys.stderr.write(f"pod: Printify refused: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(registered, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def console() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())
