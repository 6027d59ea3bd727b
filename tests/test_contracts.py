"""Artifacts checked where they are read (distill.contracts): a truncated, foreign or non-parquet file, or JSON
that is cut off or lacks its keys, fails naming the file and the problem; the contracts agree with CONTRACTS.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from distill.contracts import JSON, PARQUET, TRACE, ArtifactError, check_parquet, read_json, read_parquet
from distill.io import write_parquet

ROOT = Path(__file__).resolve().parents[1]


def complete(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """A test's frame with the rest of its artifact's contract columns added (empty), so it reads as one."""
    return frame.assign(**{c: None for c in columns if c not in frame})


def traces(tmp_path: Path, rows: int = 200) -> Path:
    """A real traces.parquet-shaped file (every contract column), big enough to truncate meaningfully."""
    frame = pd.DataFrame({c: [f"{c}-{i}" * 5 for i in range(rows)] for c in TRACE})
    path = tmp_path / "results" / "traces.parquet"
    write_parquet(frame, path)
    return path


def test_the_contracts_name_only_columns_contracts_md_lists() -> None:
    section = (ROOT / "CONTRACTS.md").read_text().split("## Columns", 1)[1]
    words = set(re.findall(r"[a-z_0-9]+", section))
    for pattern, columns in {**PARQUET, **JSON}.items():
        assert pattern.split("/")[-1].split("_*")[0].split(".")[0] in words, pattern
        assert not (missing := [c for c in columns if c not in words]), (pattern, missing)


def test_contracts_match_whole_file_names() -> None:
    from distill.contracts import _contract

    assert _contract(Path("results/corrected.parquet"), PARQUET)[0] == "corrected.parquet"
    assert _contract(Path("results/variants/x/scores/epoch_3.parquet"), PARQUET)[0] == "scores/epoch_*.parquet"
    assert _contract(Path("results/diagnostics/diff_grounded_corrected.parquet"), PARQUET) is None


def test_a_good_artifact_reads_back_whole(tmp_path) -> None:
    path = traces(tmp_path)
    assert read_parquet(path).shape == (200, len(TRACE))
    assert read_parquet(path, columns=["trace_id"]).columns.tolist() == ["trace_id"]


@pytest.mark.parametrize("damage", ["truncated", "footer only", "garbage", "empty"])
def test_a_damaged_parquet_names_the_file_and_says_it_is_unreadable(tmp_path, damage) -> None:
    path = traces(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "footer only": data[-2000:],
                      "garbage": b"not a parquet file at all\n" * 40, "empty": b""}[damage])
    with pytest.raises(ArtifactError, match=re.escape(str(path)) + ": not a readable parquet file") as err:
        read_parquet(path)
    assert "rerun" in str(err.value) or "run snakemake again" in str(err.value)


def test_a_foreign_table_under_a_contract_name_names_the_missing_columns(tmp_path) -> None:
    path = tmp_path / "results" / "predictions" / "epoch_2.parquet"
    write_parquet(pd.DataFrame({"trace_id": ["a"], "answer": ["x"]}), path)
    with pytest.raises(ArtifactError, match=r"epoch_2\.parquet: missing column\(s\) category, model_id") as err:
        read_parquet(path)
    assert "predictions/epoch_*.parquet artifact (CONTRACTS.md)" in str(err.value)


def test_a_caller_can_require_columns_of_a_file_without_a_contract(tmp_path) -> None:
    path = tmp_path / "anything.parquet"
    write_parquet(pd.DataFrame({"trace_id": ["a"]}), path)
    assert check_parquet(path) == ["trace_id"]
    with pytest.raises(ArtifactError, match="missing column\\(s\\) final_answer; this step needs trace_id, final_answer"):
        check_parquet(path, ("trace_id", "final_answer"))
    with pytest.raises(ArtifactError, match="nope.parquet: no such file"):
        read_parquet(tmp_path / "nope.parquet")


def test_json_artifacts_cut_off_or_without_their_keys(tmp_path) -> None:
    selection = tmp_path / "results" / "selection.json"
    selection.parent.mkdir(parents=True)
    selection.write_text('{"task_epoch": 2, "eval_loss_ep')
    with pytest.raises(ArtifactError, match=r"selection\.json: not valid JSON"):
        read_json(selection)
    selection.write_text(json.dumps({"epoch": 2}))
    with pytest.raises(ArtifactError, match=r"selection\.json: missing key\(s\) task_epoch"):
        read_json(selection)
    selection.write_text(json.dumps({"task_epoch": 2}))
    assert read_json(selection) == {"task_epoch": 2}
    scores = tmp_path / "results" / "scores" / "epoch_1.json"
    scores.parent.mkdir()
    scores.write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="missing key\\(s\\) n, judge_name, overall, per_category, ship_bar"):
        read_json(scores)
