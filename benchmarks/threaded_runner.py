"""``threaded``: the original runtime's architecture, rebuilt in a few dozen lines.

A thread pool of blocking ``requests`` calls (one thread per rollout in
flight), one tool call per round, one shared 4-worker image-download pool,
and the whole results file rewritten after every rollout.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import requests

from ._common import ANSWER, FINAL, SYSTEM, first_call, image_lines, knowledge, search_block


def run_threaded(
    *, policy_url: str, serper_url: str, folder: Path, num_rollouts: int, concurrency: int,
    rounds: int = 11, stop_after: float | None = None,
) -> dict[str, Any]:
    """Run the rollouts; return completions, latencies and timestamps."""
    downloads = ThreadPoolExecutor(max_workers=4)  # the original's one shared pool
    local = threading.local()
    lock = threading.Lock()
    results: list[dict[str, Any]] = []
    latencies: list[float] = []
    completion_times: list[float] = []
    start = time.perf_counter()
    results_file = folder / "results.json"

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session  # type: ignore[no-any-return]

    def download(url: str, path: Path) -> bool:
        resp = session().get(url, timeout=60)
        if resp.status_code != 200:
            return False
        path.write_bytes(resp.content)
        return True

    def rollout(index: int) -> None:
        if stop_after is not None and time.perf_counter() - start > stop_after:
            return
        began = time.perf_counter()
        s = session()
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"bench request {index}: a coastal town at dusk"}]
        termination, images = "max_rounds_reached", 0
        for rnd in range(1, rounds + 1):
            if stop_after is not None and time.perf_counter() - start > stop_after:
                termination = "stopped"  # past the measuring window: give up quickly
                break
            if rnd == rounds:
                messages.append({"role": "user", "content": FINAL})
            data = s.post(f"{policy_url}/chat/completions", json={"model": "GenEvolve", "messages": messages, "max_tokens": 4096}, timeout=600).json()
            content = data["choices"][0]["message"]["content"] or ""
            messages.append({"role": "assistant", "content": content})
            if ANSWER.search(content):
                termination = "answer"
                break
            call = first_call(content)
            if call is None:
                continue
            name, args = call.get("name"), call.get("arguments", {})
            if name == "search":
                queries = args.get("queries", [])
                observation = "\n".join(
                    search_block(q, s.post(f"{serper_url}/search", json={"q": q, "num": 5}, headers={"X-API-KEY": "k"}, timeout=60).json())
                    for q in queries
                )
            elif name == "image_search":
                found = s.post(f"{serper_url}/images", json={"q": args.get("query", ""), "num": 5}, headers={"X-API-KEY": "k"}, timeout=60).json()
                items = found.get("images", [])[:5]
                urls = [item["imageUrl"] for item in items]
                paths = [folder / f"{index}-{rnd}-{i}.img" for i in range(len(urls))]
                futures = [downloads.submit(download, u, p) for u, p in zip(urls, paths, strict=True)]
                entries = []
                for item, p, f in zip(items, paths, futures, strict=True):
                    if f.result():
                        images += 1
                        entries.append((f"IMG_{images:03d}", item, str(p)))
                observation = image_lines(args.get("query", ""), entries)
            else:
                observation = knowledge(str(args.get("skill_name", "")))
            messages.append({"role": "user", "content": f"<tool_response>\n{observation}\n</tool_response>"})
        done = time.perf_counter()
        with lock:
            results.append({"id": index, "termination": termination, "messages": messages})
            if termination == "answer" and (stop_after is None or done - start <= stop_after):
                latencies.append(done - began)
                completion_times.append(done - start)
            # The original rewrites its whole results file after every rollout.
            results_file.write_text(json.dumps(results))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        wait([pool.submit(rollout, i) for i in range(num_rollouts)])
    downloads.shutdown()
    duration = time.perf_counter() - start
    if stop_after is not None:
        duration = min(duration, stop_after)
    return {
        "completed": len(latencies),
        "failed": len(results) - len(latencies),
        "duration": duration,
        "latencies": latencies,
        "completion_times": completion_times,
    }
