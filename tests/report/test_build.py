"""The report of a simulated pipeline run: every item once, the summary's own figures, escaping."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from genevolve_async import ConfigurationError
from genevolve_async.__main__ import main
from genevolve_async.report import build_report, load_run, read_splits

from ._parse import parse_report
from .conftest import INJECTED, INJECTED_CATEGORY, PROMPTS, SAMPLES


def _eval_rows(out: Path) -> list[dict[str, object]]:
    rows = json.loads((out / "results_eval.json").read_text(encoding="utf-8"))
    return [row for row in rows if "summary_type" not in row]


def _report(run: Path, tmp_path: Path, **options: object) -> tuple[str, Path]:
    dest = tmp_path / "report.html"
    info = build_report(run / "out", dest, gt_root=run / "bench", **options)  # type: ignore[arg-type]
    assert info.path == dest and info.items == PROMPTS * SAMPLES
    return dest.read_text(encoding="utf-8"), dest


def test_every_item_has_one_card_with_its_filter_keys(sim_run: Path, tmp_path: Path) -> None:
    html, _ = _report(sim_run, tmp_path)
    parsed = parse_report(html)
    rows = _eval_rows(sim_run / "out")
    assert [c["id"] for c in parsed.cards] == [str(r["id"]) for r in rows]
    for card, row in zip(parsed.cards, rows, strict=True):
        assert card["eval-type"] == row["eval_type"]
        assert card["category"] == row["category"]  # the injected one too, as plain text
        assert float(card["score"]) == row["scores"]["overall"]  # type: ignore[index]
        assert card["termination"] == "answer"
    # Images are embedded thumbnails: nothing is fetched from anywhere.
    assert parsed.img_srcs and all(s.startswith("data:image/") for s in parsed.img_srcs)
    assert "http://127.0.0.1" not in "".join(parsed.img_srcs)


def test_summary_figures_are_summary_json_as_written(sim_run: Path, tmp_path: Path) -> None:
    html, _ = _report(sim_run, tmp_path)
    parsed = parse_report(html)
    summary = json.loads((sim_run / "out" / "summary.json").read_text(encoding="utf-8"))
    splits = read_splits(summary)
    # The original's layout (what evaluate writes) or today's flat one: every split read.
    nested = [v for k, v in summary.items() if k.startswith("by_")]
    assert len(splits) == (1 + sum(map(len, nested)) if "all" in summary else len(summary))
    assert splits[0].field == "all" and len(splits) > 5
    assert parsed.data["splits_source"] == "summary.json"
    assert [s["figures"] for s in parsed.data["splits"]] == [dict(s.figures) for s in splits]
    for split in splits:
        for metric in ("faithfulness", "overall", "overall_missing_zero"):
            value = split.figures[metric]
            assert parsed.cells[(f"{split.field}:{split.value}", metric)] == f"{value:.4f}"


def test_without_summary_json_the_judges_aggregation_gives_the_same(
    sim_run: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sim_run / "out", copy)
    summary = json.loads((copy / "summary.json").read_text(encoding="utf-8"))
    (copy / "summary.json").unlink()
    info = build_report(copy, tmp_path / "r.html")
    parsed = parse_report(info.path.read_text(encoding="utf-8"))
    assert parsed.data["splits_source"].startswith("computed")
    assert [s["figures"] for s in parsed.data["splits"]] == [
        dict(s.figures) for s in read_splits(summary)
    ]


def test_the_originals_summary_layout_reads_the_same() -> None:
    figures = {
        "count_eval_success": 3,
        "denominator": 4,
        "overall": 0.5,
        "overall_missing_zero": 0.375,
    }
    original = {
        "eval_json": "results_eval.json",
        "total_cases": 4,
        "all": figures,
        "by_eval_type": {"Knowledge-Anchored": figures},
        "by_category": {"animal": figures},
        "by_difficulty": {},
        "missing_case_ids": ["3"],
        "failed_case_ids": [],
    }
    ours = {
        "overall_avg": figures,
        "eval_type:Knowledge-Anchored": figures,
        "category:animal": figures,
    }
    assert read_splits(original) == read_splits(ours)
    assert [(s.field, s.value) for s in read_splits(original)] == [
        ("all", "all"), ("eval_type", "Knowledge-Anchored"), ("category", "animal"),
    ]  # fmt: skip


def test_hostile_text_is_shown_not_run(sim_run: Path, tmp_path: Path) -> None:
    html, _ = _report(sim_run, tmp_path)
    parsed = parse_report(html)
    # Our two scripts only: the data block and the page's script.
    assert [s.get("id") for s in parsed.scripts] == ["report-data", None]
    assert "<script>window.__pwned" not in html
    assert INJECTED in "".join(parsed.text)
    assert 'onerror="window.__pwned' not in html
    assert any(c["category"] == INJECTED_CATEGORY for c in parsed.cards)


def test_sampled_groups_mark_the_best_sample(sim_run: Path, tmp_path: Path) -> None:
    html, _ = _report(sim_run, tmp_path)
    groups = json.loads((sim_run / "out" / "groups.json").read_text(encoding="utf-8"))
    assert html.count('class="g" data-prompt-id=') == PROMPTS
    assert html.count("★ best of group") == PROMPTS
    ids = [c["id"] for c in parse_report(html).cards]
    for group in groups:
        # The best sample's card carries the mark.
        card = html.split(f'data-id="{group["best_id"]}"', 1)[1].split("</header>", 1)[0]
        assert "best of group" in card
        assert group["best_id"] in ids


def test_any_subset_of_stages_makes_a_report(sim_run: Path, tmp_path: Path) -> None:
    only_rollouts = tmp_path / "rollouts-only"
    only_rollouts.mkdir()
    shutil.copy(sim_run / "out" / "rollouts.jsonl", only_rollouts)
    info = build_report(only_rollouts, tmp_path / "r.html")
    html = info.path.read_text(encoding="utf-8")
    parsed = parse_report(html)
    assert len(parsed.cards) == PROMPTS * SAMPLES and all(c["score"] == "" for c in parsed.cards)
    assert "not judged" in html and "Trajectory" in html
    assert load_run(only_rollouts).stages == ["run"]
    # Judge rows alone (a copied results_eval.json) are enough too.
    only_eval = tmp_path / "eval-only"
    only_eval.mkdir()
    shutil.copy(sim_run / "out" / "results_eval.json", only_eval)
    assert load_run(only_eval).stages == ["evaluate"]
    with pytest.raises(ConfigurationError, match="holds no"):
        load_run(tmp_path / "r.html").stages  # noqa: B018 - a folder without any stage


def test_two_runs_compared_give_per_item_deltas(sim_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(sim_run / "out", other)
    rows = json.loads((other / "results_eval.json").read_text(encoding="utf-8"))
    for row in rows:
        if "scores" in row and row.get("eval_success"):
            row["scores"]["overall"] = round(min(1.0, row["scores"]["overall"] + 0.1), 2)
    (other / "results_eval.json").write_text(json.dumps(rows), encoding="utf-8")
    (other / "eval.jsonl").unlink()  # the results file stands in for the checkpoint
    info = build_report(sim_run / "out", tmp_path / "cmp.html", compare=other)
    html = info.path.read_text(encoding="utf-8")
    cards = parse_report(html).cards
    assert all(c["delta"] and float(c["delta"]) > 0 for c in cards)
    assert f"{len(cards)} items judged in both" in html
    assert 'value="delta-desc"' in html


def test_the_command_line_writes_thumbnail_files_beside_the_report(
    sim_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "sub" / "page.html"
    argv = ["report", str(sim_run / "out"), "--output", str(dest), "--images", "files",
            "--gt-root", str(sim_run / "bench")]  # fmt: skip
    assert main(argv) == 0
    assert "12 items" in capsys.readouterr().out
    srcs = parse_report(dest.read_text(encoding="utf-8")).img_srcs
    assert srcs and all(s.startswith("page_files/") and s.endswith(".jpg") for s in srcs)
    assert all((dest.parent / s).is_file() for s in srcs)
    assert main(["report", str(tmp_path / "missing")]) == 1


def test_an_embedded_thumbnail_is_written_once_however_often_it_shows(
    sim_run: Path, tmp_path: Path
) -> None:
    html, _ = _report(sim_run, tmp_path)
    images = re.findall(r"<img [^>]*>", html)
    sources = [re.search(r'src="([^"]*)"', tag).group(1) for tag in images]  # type: ignore[union-attr]
    embedded = [s for s in sources if s.startswith("data:image/jpeg")]
    # No JPEG is in the page twice.
    assert embedded and len(embedded) == len(set(embedded))
    named = {
        re.search(r'data-thumb-id="(\d+)"', t).group(1)  # type: ignore[union-attr]
        for t in images
        if "data-thumb-id=" in t
    }
    repeats = [re.search(r'data-thumb="(\d+)"', t).group(1) for t in images if "data-thumb=" in t]  # type: ignore[union-attr]
    # Each prompt's ground truth shows beside each of its samples, embedded once.
    assert len(repeats) >= PROMPTS * (SAMPLES - 1)
    assert set(repeats) <= named
