#!/usr/bin/env python
"""One request, end to end: agent rollout, then rendering, then a PNG on disk.

With real services (a vLLM server for the policy, SERPER_API_KEY for search,
and a renderer)::

    python examples/quickstart.py --backend nano-banana-pro \\
        --base-url http://localhost:8000/v1 --model GenEvolve \\
        --prompt "A 1990s travel-magazine cover of two backpackers at the Eiffel Tower" \\
        --output paris.png

    python examples/quickstart.py --backend qwen-image-edit-service \\
        --service-url http://your-qwen-service:8001 --output paris_qwen.png

Without ``--prompt`` it takes a request from ``example_prompts.jsonl``
(``--example ex06``). With ``--sim`` every service is simulated on loopback,
so it runs anywhere in a second or two (the picture is a placeholder).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from genevolve_async import GenEvolveAgent, Runtime
from genevolve_async.renderers import make_renderer, render_program
from genevolve_async.sim import SimImageHost, SimPolicy, SimQwenService, SimSerper, SimServer
from genevolve_async.tools import (
    ImageCacheSettings,
    ImageSearch,
    QueryKnowledge,
    SerperBackend,
    WebSearch,
)

EXAMPLES = Path(__file__).with_name("example_prompts.jsonl")
BACKENDS = ("qwen-image-edit-service", "nano-banana-pro", "qwen-image-edit")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--backend", choices=BACKENDS, default="nano-banana-pro")
    p.add_argument(
        "--service-url", action="append", default=[], help="Qwen-Image-Edit service (repeatable)"
    )
    p.add_argument(
        "--base-url", action="append", default=[], help="policy endpoint (repeatable: replicas)"
    )
    p.add_argument("--api-key", help="policy key (default: OPENAI_API_KEY, else EMPTY)")
    p.add_argument("--model", default="GenEvolve")
    p.add_argument("--prompt", help="the request (default: one of example_prompts.jsonl)")
    p.add_argument("--example", default="ex01", help="id of the example request to use")
    p.add_argument("--output", type=Path, default=Path("quickstart_output.png"))
    p.add_argument("--seed", type=int)
    p.add_argument("--sim", action="store_true", help="simulate every service on loopback")
    return p.parse_args(argv)


def example_prompt(example_id: str) -> str:
    for line in EXAMPLES.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == example_id:
            return str(row["prompt"])
    raise SystemExit(f"no example {example_id!r} in {EXAMPLES.name}")


@asynccontextmanager
async def simulated(workdir: Path) -> AsyncIterator[dict[str, Any]]:
    """Start a simulated policy, search service, image host and Qwen service."""
    async with AsyncExitStack() as stack:
        images = await stack.enter_async_context(SimServer(SimImageHost().app))
        serper = await stack.enter_async_context(SimServer(SimSerper(image_host=images.url).app))
        policy = await stack.enter_async_context(SimServer(SimPolicy().app))
        qwen = await stack.enter_async_context(SimServer(SimQwenService(gpus=2).app))
        backend = SerperBackend(base_url=serper.url, api_key="sim")
        cache = ImageCacheSettings(folder=workdir / "images", allow_private=True)
        yield {
            "base_url": [policy.url + "/v1"],
            "service_urls": [qwen.url],
            "backend": "qwen-image-edit-service",
            "tools": [WebSearch(backend), ImageSearch(backend, cache=cache), QueryKnowledge()],
        }


async def generate(args: argparse.Namespace) -> int:
    prompt = args.prompt or example_prompt(args.example)
    with tempfile.TemporaryDirectory(prefix="genevolve-quickstart-") as tmp:
        async with AsyncExitStack() as stack:
            setup: dict[str, Any] = {
                "base_url": args.base_url or None,
                "service_urls": args.service_url,
                "backend": args.backend,
                "tools": None,
            }
            if args.sim:
                setup = await stack.enter_async_context(simulated(Path(tmp)))
            runtime = await stack.enter_async_context(Runtime())
            options: dict[str, Any] = {"base_url": setup["base_url"]} if setup["base_url"] else {}
            if args.api_key and not args.sim:
                options["api_key"] = args.api_key
            agent = GenEvolveAgent(
                runtime=runtime, model=args.model, tools=setup["tools"], **options
            )
            print(f"request: {prompt}")
            result = await agent.arun(prompt, seed=args.seed)
            print(f"termination: {result.termination} after {result.rounds} rounds")
            print(f"gen_prompt: {result.gen_prompt or '(none: the request is rendered as is)'}")
            if args.sim and result.reference_images:
                # --sim downloads into a temporary folder removed on exit: a
                # path there would name nothing by the time it is read.
                print("references (kept in a temporary folder until the render is done):")
            for ref in result.reference_images:
                where = ref.url if args.sim else ref.local_path
                print(f"  {ref.img_id}: {where}  ({ref.note})")
            urls = setup["service_urls"] if setup["backend"] == "qwen-image-edit-service" else ()
            renderer = make_renderer(setup["backend"], runtime=runtime, service_urls=urls)
            await stack.enter_async_context(renderer)
            image = await render_program(renderer, result.to_dict(), request=prompt, seed=args.seed)
            await anyio.to_thread.run_sync(image.save, args.output)
    print(f"image: {args.output} ({image.width}x{image.height})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return anyio.run(generate, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
