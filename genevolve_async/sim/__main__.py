"""``python -m genevolve_async.sim``: every simulated service, in its own process.

Starts the policy, Serper, the image host, a Qwen-Image-Edit service, the
judge and Nano Banana Pro's API on loopback, prints the ``export`` lines and
the ``genevolve-async`` flags that use them, and serves until SIGINT or
SIGTERM (or ``--max-seconds``). It does not read standard input, so it runs
in the background (``&``) as well as in a terminal of its own.

``--env-file PATH`` also writes the ``export`` lines to PATH once every
service listens (atomically, so a reader never sees half of it) and removes
it on exit: ``. PATH`` in another shell, or wait for it in a script.

``--json`` prints one JSON line of URLs instead; with ``--until-stdin-closes``
the process also ends when its parent closes our standard input. The
bench starts it this way, so the simulated services do not share the
measured event loop's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import anyio
import anyio.to_thread

from .._gc import tune_gc_for_throughput
from ._stack import SimConfig, SimStack

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genevolve_async.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config-json",
        default="{}",
        help="SimConfig fields as a JSON object, latencies in seconds (e.g. '{\"model_latency\": 0.5}')",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="stop after this many seconds (default: run until stopped)",
    )
    parser.add_argument(
        "--env-file", type=Path, help="also write the export lines to this file (removed on exit)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line of URLs instead")
    parser.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="also stop when standard input closes (for a parent process that owns us)",
    )
    return parser


def export_lines(stack: SimStack) -> list[str]:
    """``export NAME=value`` lines for a POSIX shell."""
    return [f"export {name}={shlex.quote(value)}" for name, value in stack.env().items()]


def _banner(stack: SimStack, max_seconds: float | None) -> str:
    flags = " ".join(shlex.quote(flag) for flag in stack.cli_flags())
    lasting = f"for {max_seconds:g} s" if max_seconds else "until Ctrl-C or SIGTERM"
    lines = [
        f"# simulated backends up ({lasting}):",
        *(f"#   {name:<7} {url}" for name, url in _flat_urls(stack)),
        "# in another shell:",
        *export_lines(stack),
        f"export GENEVOLVE_SIM_FLAGS={shlex.quote(flags)}",
        "# then: genevolve-async pipeline --input INPUT --output-dir OUT $GENEVOLVE_SIM_FLAGS",
        "#   (Nano Banana Pro instead of Qwen: --backend nano-banana-pro; the export lines"
        " point google-genai at the simulated API)",
    ]
    return "\n".join(lines)


def _flat_urls(stack: SimStack) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in stack.urls.items():
        for url in value if isinstance(value, list) else [value]:
            out.append((name, str(url)))
    return out


def _write_env_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def _wait_for_stop(
    max_seconds: float | None, until_stdin_closes: bool, stop_message: list[str]
) -> None:
    async with anyio.create_task_group() as tg:

        async def signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                async for signum in received:
                    stop_message.append(f"stopping on {signal.Signals(signum).name}")
                    tg.cancel_scope.cancel()
                    return

        async def stdin_closed() -> None:
            await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            stop_message.append("stopping: standard input closed")
            tg.cancel_scope.cancel()

        tg.start_soon(signals)
        if until_stdin_closes:
            tg.start_soon(stdin_closed)
        if max_seconds is not None:
            await anyio.sleep(max_seconds)
            stop_message.append(f"stopping after {max_seconds:g} s (--max-seconds)")
            tg.cancel_scope.cancel()


async def _serve(args: argparse.Namespace, config: SimConfig) -> None:
    env_file: Path | None = args.env_file
    stopped: list[str] = []
    async with SimStack(config) as stack:
        if args.json:
            print(json.dumps(stack.urls), flush=True)
        else:
            print(_banner(stack, args.max_seconds), flush=True)
        try:
            if env_file is not None:
                text = "\n".join(export_lines(stack)) + "\n"
                flags = " ".join(shlex.quote(flag) for flag in stack.cli_flags())
                text += f"export GENEVOLVE_SIM_FLAGS={shlex.quote(flags)}\n"
                await anyio.to_thread.run_sync(_write_env_file, env_file, text)
            await _wait_for_stop(args.max_seconds, args.until_stdin_closes, stopped)
        finally:
            if env_file is not None:
                await anyio.Path(env_file).unlink(missing_ok=True)
    if stopped and not args.json:
        print(f"# {stopped[0]}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = SimConfig.from_dict(json.loads(args.config_json))
    # Thousands of requests a second: full collections would stall every
    # simulated service at once and show up as our latency.
    tune_gc_for_throughput()
    options: dict[str, object] = {}
    try:
        import uvloop  # noqa: F401  # the sim's CPU is not what we measure; make it cheap
    except ImportError:
        pass
    else:
        options["use_uvloop"] = True
    anyio.run(_serve, args, config, backend_options=options)


if __name__ == "__main__":
    main()
