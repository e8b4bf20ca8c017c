"""Bad input, tried on purpose: the corpus in ``tests/data/bad/`` through the public surface.

``rows.jsonl`` (input rows: malformed JSON, no request, duplicate ids, ids
with path separators or ``..``, non-UTF-8 bytes, a ground truth that is no
image, plus rows whose requests make the simulated services misbehave), with
a 10 MB request added at run time, goes through ``python -m genevolve_async
pipeline``. ``policy_replies.json`` holds the model replies those rows get
(unbalanced tags, arguments that are no object or nested 40 deep, a tool
that does not exist, ``top_k`` of -1 or 10^9, answers citing ids never
registered); ``serper_answers.json`` the Serper answers (missing fields,
wrong types, wrong shapes); ``image_urls.json`` image results that redirect
to private addresses or non-http schemes, a decompression bomb, a page.

Each gets a clear, classified error or a safe default; nothing crashes the
batch, nothing is written outside the output folder, no key shows up in any
output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import anyio
import anyio.lowlevel
import pytest

from genevolve_async import ErrorKind, GenEvolveAgent, RetryPolicy, Runtime
from genevolve_async.bench import LoopLagProbe
from genevolve_async.sim import (
    JudgeFaults,
    PolicyScript,
    SimImageHost,
    SimJudge,
    SimPolicy,
    SimQwenService,
    SimSerper,
    SimServer,
    make_png,
)
from genevolve_async.tools import (
    ImageCache,
    ImageCacheSettings,
    ImageSearch,
    SerperBackend,
    WebSearch,
)

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
KEYS = {
    "OPENAI_API_KEY": "sk-bad-input-policy-7f3a9c",
    "SERPER_API_KEY": "bad-input-serper-51d2e8",
    "GENEVOLVE_JUDGE_API_KEY": "sk-bad-input-judge-c04b17",
}
ERROR_KINDS = set(get_args(ErrorKind))
BIG_PROMPT_BYTES = 10 * 2**20


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


def _corpus(name: str) -> Any:
    return json.loads((BAD / name).read_text(encoding="utf-8"))


def _with_host(value: Any, host: str) -> Any:
    """The corpus value with ``{images}`` replaced by the image host's URL."""
    return json.loads(json.dumps(value).replace("{images}", host))


@dataclass(kw_only=True)
class BadSims:
    policy: SimPolicy
    serper: SimSerper
    images: SimImageHost
    judge: SimJudge
    image_url: str
    urls: dict[str, str]


@asynccontextmanager
async def bad_sims(*, judge_faults: JudgeFaults | None = None) -> AsyncIterator[BadSims]:
    """Simulated services answering with the corpus's bad replies and bad Serper answers."""
    images = SimImageHost()
    async with AsyncExitStack() as stack:
        image_url = (await stack.enter_async_context(SimServer(images.app))).url
        policy = SimPolicy(canned_replies=_corpus("policy_replies.json"))
        serper = SimSerper(
            image_host=image_url,
            api_key=KEYS["SERPER_API_KEY"],
            overrides=_with_host(_corpus("serper_answers.json"), image_url),
        )
        judge = SimJudge(api_key=KEYS["GENEVOLVE_JUDGE_API_KEY"], faults=judge_faults)
        qwen = SimQwenService(gpus=8)
        urls = {}
        for name, app in (
            ("policy", policy.app),
            ("serper", serper.app),
            ("qwen", qwen.app),
            ("judge", judge.app),
        ):
            urls[name] = (await stack.enter_async_context(SimServer(app))).url
        yield BadSims(
            policy=policy, serper=serper, images=images, judge=judge, image_url=image_url, urls=urls
        )


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _env(sims: BadSims, cache: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "GENEVOLVE_", "SERPER_"))
    }
    return {
        **env,
        **KEYS,
        "SERPER_BASE_URL": sims.urls["serper"],
        "GENEVOLVE_ALLOW_PRIVATE_HOSTS": "1",
        "IMAGE_DOWNLOAD_DIR": str(cache),
        "GENEVOLVE_JUDGE_BASE_URL": sims.urls["judge"] + "/v1",
        "PYTHONPATH": str(ROOT),
    }


async def _cli(argv: list[str], env: dict[str, str], *, status: int = 0) -> str:
    result = await anyio.run_process(
        [sys.executable, "-m", "genevolve_async", *argv], env=env, cwd=ROOT, check=False
    )
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert result.returncode == status, output[-3000:]
    return output


def _dataset(folder: Path) -> Path:
    """The corpus rows plus a 10 MB request, next to a ground-truth image."""
    folder.mkdir()
    (folder / "gt.png").write_bytes(make_png((40, 90, 160)))
    data = folder / "rows.jsonl"
    shutil.copyfile(BAD / "rows.jsonl", data)
    big = {"id": "ten-megabytes", "question": "a lighthouse " * (BIG_PROMPT_BYTES // 13)}
    with data.open("ab") as handle:
        handle.write(json.dumps(big).encode() + b"\n")
    return data


def _observations(row: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content")) for m in row.get("messages", []) if m.get("role") != "system"
    )


def _assert_no_keys(texts: list[str], *roots: Path) -> None:
    blobs = [t.encode() for t in texts]
    for root in roots:
        blobs += [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    for key in KEYS.values():
        assert not any(key.encode() in blob for blob in blobs), f"a key leaked: {key}"


async def test_the_bad_corpus_through_the_pipeline_command(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "dataset")
    out, cache = tmp_path / "out", tmp_path / "cache"
    before = _tree(tmp_path)
    async with bad_sims() as sims:
        env = _env(sims, cache)
        output = await _cli(
            [
                "pipeline",
                "--input",
                str(data),
                "--output-dir",
                str(out),
                "--base-url",
                sims.urls["policy"] + "/v1",
                "--service-url",
                sims.urls["qwen"],
                "--render-option",
                "long_side=128",
                "--rpm",
                "60000",
                "--max-tries",
                "3",
            ],
            env,
        )
        # Not one request near 10 MB reached the policy: refused before sending.
        assert max(len(p) for p in sims.policy.prompts) < 10_000
        served = dict(sims.serper.stats.faults)

    # Each bad row is named with its line and reason; the batch went on.
    for line, words in (
        (2, "not valid JSON"),
        (3, "expected a JSON object, got list"),
        (4, "expected a JSON object, got str"),
        (5, "no request"),
        (6, "no request"),
        (7, "no request"),
        (9, "duplicate id 'dup'"),
        (14, "'id' must be a non-empty string or an integer"),
        (15, "not valid JSON"),
        (16, "not valid JSON"),
        (38, "nested more than 64 levels deep"),
    ):
        assert f"line {line}: {words}" in output, (line, output[-3000:])

    rows = {r["id"]: r for r in json.loads((out / "results.json").read_text())}
    judged = [r for r in json.loads((out / "results_eval.json").read_text()) if "id" in r]
    expected = {
        json.loads(line)["id"]
        for n, line in enumerate((BAD / "rows.jsonl").read_bytes().splitlines(), 1)
        if n not in (2, 3, 4, 5, 6, 7, 9, 14, 15, 16, 38)
    } | {"ten-megabytes"}
    assert [r["id"] for r in judged if "summary_type" not in r] == list(rows)
    assert set(rows) == expected and len(judged) >= len(expected)

    # Every item ended with its output or a classified error, stage by stage.
    for row_id, row in rows.items():
        if row["termination"] != "answer":
            assert row["error"]["kind"] in ERROR_KINDS, row_id
        if not row["success"]:
            kind = row["image_status"].removeprefix("error: ").split(":", 1)[0]
            assert kind in ERROR_KINDS, (row_id, row["image_status"])
    for row in judged:
        if "summary_type" not in row and not row["eval_success"]:
            assert row["error_kind"] in ERROR_KINDS | {"missing_image"}, row

    big = rows["ten-megabytes"]
    assert big["termination"] == "error" and big["error"]["kind"] == "invalid_request"
    assert "prompt budget" in big["error"]["message"]
    assert rows["good-1"]["termination"] == "answer" and rows["good-1"]["success"]
    gt = next(r for r in judged if r.get("id") == "gt-not-an-image")
    assert gt["eval_success"] is False and gt["error_kind"] == "invalid_request"

    _check_replies(rows)
    _check_serper(rows, served)

    # Ids with separators or '..' became safe names inside out/images; nothing escaped.
    images = sorted(p.name for p in (out / "images").iterdir())
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in images)
    for row in rows.values():
        if row.get("image_path"):
            assert (out / row["image_path"]).resolve().is_relative_to(out.resolve())
    created = _tree(tmp_path) - before
    assert all(p.is_relative_to(out) or p.is_relative_to(cache) for p in created), sorted(
        str(p) for p in created if not (p.is_relative_to(out) or p.is_relative_to(cache))
    )
    _assert_no_keys([output], out, cache)


def _check_replies(rows: dict[str, Any]) -> None:
    """Each bad reply became an observation the policy could read, and the rollout went on."""
    said = {row_id: _observations(row) for row_id, row in rows.items()}
    for row_id, words in (
        ("reply-stray-close-tags", "has no opening"),
        ("reply-unclosed-answer", "not valid JSON"),
        ("reply-non-object-arguments", '"arguments" must be a JSON object'),
        ("reply-string-arguments", "arguments are not valid JSON"),
        ("reply-deep-arguments", "nested too deeply"),
        ("reply-call-not-object", "a tool call must be a JSON object"),
        ("reply-unknown-tool", "there is no tool named 'delete_everything'"),
        ("reply-answer-not-object", "must hold a JSON object"),
        ("reply-answer-bad-refs", '"reference_images" must be a list'),
    ):
        assert words in said[row_id], (row_id, said[row_id][-1500:])
    for row_id in said:
        if row_id.startswith("reply-") and row_id != "reply-answer-odd-refs":
            assert rows[row_id]["termination"] == "answer", row_id  # recovered next round
    # An unclosed <tool_call> still ran: a safe default, not an error.
    assert "=== Skill: spatial_layout ===" in said["reply-unbalanced-tags"]
    # top_k -1 asks for one image, 10^9 for the most allowed (10), "1e9" as a number.
    assert said["reply-top-k-negative"].count("local_path:") >= 1
    assert said["reply-top-k-negative"].split("--- end of image search")[0].count("IMG_") == 1
    first_search = said["reply-top-k-huge"].split("--- end of image search")[0]
    assert first_search.count("local_path:") == 10
    assert said["reply-top-k-string"].split("--- end of search result")[0].count("title:") == 10
    # Answers citing ids never registered keep only what exists.
    assert rows["reply-answer-odd-refs"]["reference_images"] == []
    assert rows["unregistered-ids"]["reference_images"] == []
    assert rows["unregistered-ids"]["termination"] == "answer"
    assert "invalid_request" in rows["unregistered-ids"]["image_status"]


def _check_serper(rows: dict[str, Any], served: dict[str, int]) -> None:
    """Missing fields and wrong types: safe defaults; wrong shapes: one error block each."""
    assert served.get("override", 0) >= 5
    said = {row_id: _observations(row) for row_id, row in rows.items()}
    missing = said["serper-missing-fields"]
    assert "1. title: only a title" in missing and "2. title: \n  url: https://" in missing
    assert "zz-missing-fields-ok.png" in missing  # the one image with a URL was kept
    types = said["serper-wrong-types"]
    assert "1. title: \n" in types and "zz-wrong-types-ok.png" in types
    shape = said["serper-wrong-shape"]
    assert "--- search result for [" in shape and "--- end of image search result ---" in shape
    assert "Not enough credits" in said["serper-gateway-error"]
    assert "not an object" in said["serper-not-an-object"]
    for row_id in ("serper-missing-fields", "serper-wrong-types", "serper-wrong-shape"):
        assert rows[row_id]["termination"] == "answer", row_id


async def test_a_judge_that_answers_without_json_gives_classified_errors(
    tmp_path: Path,
) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "gt.png").write_bytes(make_png((40, 90, 160)))
    rows = [{"id": str(i), "question": f"request {i}", "gt_image": "gt.png"} for i in range(3)]
    (data / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    async with bad_sims(judge_faults=JudgeFaults(no_json=1.0)) as sims:
        output = await _cli(
            [
                "pipeline",
                "--input",
                str(data / "rows.jsonl"),
                "--output-dir",
                str(out),
                "--base-url",
                sims.urls["policy"] + "/v1",
                "--service-url",
                sims.urls["qwen"],
                "--render-option",
                "long_side=128",
                "--max-tries",
                "2",
            ],
            _env(sims, tmp_path / "cache"),
            status=3,  # not one item was judged: the status says so
        )
        assert len(sims.judge.requests) == 6  # two tries per sample, then it gave up
    judged = [r for r in json.loads((out / "results_eval.json").read_text()) if "id" in r]
    assert [r["id"] for r in judged] == ["0", "1", "2"]
    for row in judged:
        assert row["eval_success"] is False and row["error_kind"] == "bad_response"
        assert "no usable scores after 2 tries" in row["error"]
    assert (out / "summary.json").is_file() and "errors by kind: bad_response 3" in output
    _assert_no_keys([output], out)


async def test_image_urls_to_private_addresses_and_other_schemes_are_dropped(
    tmp_path: Path,
) -> None:
    cases = _corpus("image_urls.json")
    async with bad_sims() as sims:
        images = []
        for n, case in enumerate(cases):
            url = case.get("url") or "{images}/redirect-to?url=" + quote(case["redirect_to"], "")
            images.append({"title": f"case {n}: {case['case']}", "imageUrl": url})
        sims.serper.overrides = {"zz-image-urls": _with_host({"images": images}, sims.image_url)}
        sims.policy.script = PolicyScript(tools=("image_search",), rounds=2, image_top_k=10)
        backend = SerperBackend(base_url=sims.urls["serper"], api_key=KEYS["SERPER_API_KEY"])
        # Public addresses only, plus the loopback host the simulated images live on.
        settings = ImageCacheSettings(
            folder=tmp_path / "cache", allow_private=False, allowed_networks=("127.0.0.1/32",)
        )
        async with Runtime() as runtime:
            agent = GenEvolveAgent(
                runtime=runtime,
                base_url=sims.urls["policy"] + "/v1",
                tools=[ImageSearch(backend, cache=settings)],
            )
            result = await agent.arun("zz-image-urls a lighthouse on a cliff")
            cache = await ImageCache.for_runtime(runtime, settings)
            dropped = dict(cache.stats.dropped)
    assert result.termination == "answer"
    observation = _observations(result.to_dict())
    kept = [c for c in cases if c["dropped"] is None]
    assert observation.count("local_path:") == len(kept)
    assert [r.img_id for r in result.reference_images] == ["IMG_001"]
    for reason in {c["dropped"] for c in cases if c["dropped"]}:
        assert dropped.get(reason), (reason, dropped)
    assert sum(dropped.values()) == len(cases) - len(kept)
    assert "169.254.169.254" not in observation and "/etc/passwd" not in observation
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".png"]) == len(kept)


async def test_a_reply_of_unclosed_braces_does_not_stall_the_loop(tmp_path: Path) -> None:
    """200 KB of ``{`` once took minutes of quadratic scanning, on the event loop."""
    async with bad_sims() as sims:
        sims.policy.canned_replies["braces"] = "<tool_call>" + "{" * 200_000
        sims.policy.canned_replies["nested"] = (
            '<answer>{"gen_prompt": "x", "reference_images": ' + '[{"a": ' * 40_000
        )
        probe = LoopLagProbe()
        async with Runtime() as runtime, anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            agent = GenEvolveAgent(runtime=runtime, base_url=sims.urls["policy"] + "/v1", tools=[])
            started = time.monotonic()
            results = [
                await agent.arun(f"[sim:canned={name}] a lighthouse", max_rounds=3)
                for name in ("braces", "nested")
            ]
            elapsed = time.monotonic() - started
            tg.cancel_scope.cancel()
    for result in results:
        assert result.termination == "answer", result.error
    assert "not valid JSON" in _observations(results[0].to_dict())
    # 280 KB is more than a round's max_tokens can hold: cut, and the policy is told so.
    assert "RESPONSE TOO LONG" in _observations(results[1].to_dict())
    # Generous bounds: the fixed parser needs milliseconds; the old one, minutes of
    # CPU on the loop's thread (which a busy machine does not inflate).
    assert probe.worst_cpu < 2.0, (probe.worst_cpu, probe.worst)
    assert elapsed < 60, elapsed  # a hang detector: quadratic anywhere takes minutes


async def test_services_that_echo_the_key_do_not_leak_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy_key, serper_key = KEYS["OPENAI_API_KEY"], KEYS["SERPER_API_KEY"]
    echo = {"error": {"message": f"key {policy_key} is over its quota"}}
    caplog.set_level(logging.DEBUG, logger="genevolve_async")
    async with bad_sims() as sims:
        sims.serper.overrides["zz-echo"] = {"message": f"no credits left on {serper_key}"}
        sims.policy.script = PolicyScript(tools=("search",), rounds=2)
        backend = SerperBackend(base_url=sims.urls["serper"], api_key=serper_key)
        async with Runtime(retry=RetryPolicy(attempts=3, sleep=_no_sleep)) as runtime:
            agent = GenEvolveAgent(
                runtime=runtime,
                base_url=sims.urls["policy"] + "/v1",
                api_key=policy_key,
                tools=[WebSearch(backend)],
            )
            sims.policy.fail_next(2, 500, body=echo)  # retried, then served
            searched = await agent.arun("zz-echo a lighthouse on a cliff")
            sims.policy.fail_next(1, 400, body=echo)  # not retried: the rollout's error
            refused = await agent.arun("a lighthouse on a cliff")
    assert searched.termination == "answer" and "no credits left on [redacted]" in str(
        searched.to_dict()
    )
    assert refused.error is not None and "key [redacted] is over its quota" in str(refused.error)
    _assert_no_keys([str(searched.to_dict()), str(refused.to_dict()), caplog.text])


@pytest.mark.parametrize("top_k", [-1, 0, 10**9, "1e9", "lots", None, True, 3.7])
def test_top_k_is_always_made_sane(top_k: object) -> None:
    from genevolve_async.tools.search import clamp_top_k

    assert 1 <= clamp_top_k(top_k, default=5, maximum=10) <= 10


# -- hostile input: hostile.json ---------------------------------------------------

HOSTILE = _corpus("hostile.json")
REPLY_CAP = 4096 * 16  # max_tokens_per_round times the most characters a token stands for


def _hostile_replies() -> dict[str, str]:
    cases = {k: v for k, v in HOSTILE["replies"].items() if not k.startswith("_")}
    return {name: head + unit * n + tail for name, (head, unit, tail, n) in cases.items()}


async def test_hostile_replies_neither_stall_the_loop_nor_grow_the_result() -> None:
    """Megabytes that once cost seconds to minutes of parsing on the loop, or quadratic time."""
    replies = _hostile_replies()
    async with bad_sims() as sims:
        sims.policy.canned_replies.update(replies)
        probe = LoopLagProbe()
        async with Runtime() as runtime, anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            agent = GenEvolveAgent(runtime=runtime, base_url=sims.urls["policy"] + "/v1", tools=[])
            results = {
                name: await agent.arun(f"[sim:canned={name}] a lighthouse", max_rounds=3)
                for name in replies
            }
            tg.cancel_scope.cancel()
    for name, result in results.items():
        # Recovered next round, or the reply spent the response budget: classified either way.
        assert result.termination == "answer" or result.error.kind == "no_answer", name
        size = sum(len(str(m.get("content") or "")) for m in result.messages)
        assert size < 3 * REPLY_CAP + 50_000, (name, size)  # cut to the cap, not kept whole
    assert probe.worst < 2.0, probe.worst  # a generous hang detector: the fixed parsers need ms


def _completion(name: str, body: Any) -> Any:
    if body == "BIG":
        content = "<think>" + "x" * 5_000_000
        return {
            "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
            "usage": {"completion_tokens": 1},
        }
    if body == "DEEP":
        nested: Any = {"skill_name": "spatial_layout"}
        for _ in range(240):  # as deep as the simulated server can still write
            nested = {"a": nested}
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "query_knowledge", "arguments": nested},
        }
        return {"choices": [{"message": {"content": None, "tool_calls": [call]}}]}
    return body


async def test_hostile_completion_bodies_end_classified_and_bounded() -> None:
    bodies = {k: v for k, v in HOSTILE["completions"].items() if not k.startswith("_")}
    retry = RetryPolicy(attempts=1, sleep=_no_sleep)
    async with bad_sims() as sims, Runtime(retry=retry) as runtime:
        agent = GenEvolveAgent(runtime=runtime, base_url=sims.urls["policy"] + "/v1", tools=[])
        results = {}
        for name, body in bodies.items():
            sims.policy.fail_next(3 if body == "BIG" else 1, 200, body=_completion(name, body))
            results[name] = await agent.arun("a lighthouse on a cliff", max_rounds=4)
    for name in ("text-part-is-a-number", "text-part-is-an-object", "content-is-a-number"):
        error = results[name].error
        assert error is not None and error.kind == "bad_response", (name, error)
        assert "content" in error.message
    big = results["five-megabytes-of-one-token"]
    assert big.error is None or big.error.kind in ERROR_KINDS - {"internal"}
    # Three 5 MB replies claiming one token each: charged by size, cut to the cap.
    assert len(json.dumps(big.to_dict())) < 4 * REPLY_CAP + 100_000
    deep = results["native-arguments-240-deep"]
    assert deep.termination == "answer", deep.error
    assert "nested too deeply" in _observations(deep.to_dict())


def _hostile_results(folder: Path) -> tuple[Path, list[str]]:
    """results.json with one answered row per case of hostile.json's ``results``."""
    from genevolve_async.sim import make_bomb_png

    folder.mkdir(parents=True)
    (folder / "images").mkdir()
    good, bomb = folder / "good.png", folder / "bomb.png"
    good.write_bytes(make_png((10, 20, 30)))
    bomb.write_bytes(make_bomb_png(13_000, 13_000))
    (folder / "images" / "ok.png").write_bytes(make_png((1, 2, 3)))
    (folder / "gt.png").write_bytes(make_png((40, 90, 160)))
    rows, names = [], []
    for name, case in HOSTILE["results"].items():
        if name.startswith("_"):
            continue
        img_id = case.get("img_id", "IMG_001")
        local = str(bomb if case.get("reference") == "{bomb}" else good)
        answer = {
            "gen_prompt": "the first reference image",
            "reference_images": [{"img_id": img_id}],
        }
        rows.append(
            {
                "id": name,
                "prompt": "a lighthouse",
                "gt_image": "gt.png",
                "termination": "answer",
                "gen_prompt": "the first reference image",
                "reference_images": [{"img_id": img_id, "local_path": local}],
                "registered_images": [{"img_id": img_id, "local_path": local}],
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "a lighthouse"},
                    {"role": "assistant", "content": f"<answer>{json.dumps(answer)}</answer>"},
                ],
                "success": True,
                "image_path": case.get(
                    "image_path", "" if "output_path" in case else "images/ok.png"
                ),
                **({"output_path": case["output_path"]} if "output_path" in case else {}),
            }
        )
        names.append(name)
    data = folder / "results.json"
    data.write_text(json.dumps(rows))
    return data, names


async def test_hostile_results_files_are_refused_inside_their_folders(tmp_path: Path) -> None:
    data, names = _hostile_results(tmp_path / "results")
    before = _tree(tmp_path)
    async with bad_sims() as sims:
        env = _env(sims, tmp_path / "cache")
        outputs = [
            await _cli(
                ["export", "--results", str(data.parent), "--out", str(tmp_path / "x")], env
            ),
            await _cli(
                [
                    "render",
                    "--input",
                    str(data),
                    "--output-dir",
                    str(tmp_path / "r"),
                    "--service-url",
                    sims.urls["qwen"],
                    "--render-option",
                    "long_side=128",
                ],
                env,
            ),
            await _cli(
                ["evaluate", "--input", str(data), "--output-dir", str(tmp_path / "e")], env
            ),
        ]
    assert "is not IMG_ followed by digits" in outputs[0]
    exported = (tmp_path / "x" / "train.jsonl").read_text().splitlines()
    assert len(exported) == 3  # the three rows whose ids are fine (paths are render's business)
    rendered = {r["id"]: r for r in json.loads((tmp_path / "r" / "results.json").read_text())}
    assert set(rendered) == set(names)
    assert not rendered["reference-bomb"]["success"]
    assert "over the limit" in rendered["reference-bomb"]["image_status"]
    judged = {
        r["id"]: r
        for r in json.loads((tmp_path / "e" / "results_eval.json").read_text())
        if "id" in r
    }
    for name in ("image-path-parent", "image-path-absolute", "image-path-nul"):
        assert judged[name]["error_kind"] == "invalid_request", judged[name]
        assert "is outside" in judged[name]["error"]
    created = _tree(tmp_path) - before
    outs = [tmp_path / d for d in ("x", "r", "e", "cache")]
    assert all(any(p.is_relative_to(o) for o in outs) for p in created), sorted(map(str, created))
    assert not await anyio.Path("/tmp/escaped").exists()
    _assert_no_keys(outputs, *outs[:3])
