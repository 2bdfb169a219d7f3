"""Outputs never lost, mixed or stale; CSV cells never run as spreadsheet formulas
(issue 9)."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnml.errors import OutputPathError
from churnml.io import FORMULA_PREFIXES, escape_formulas, write_table
from churnml.outputs import JOURNAL, MARKER, OutputSet
from churnml.scoring.export import score_outputs, write_scores


def _scores(segments: list[str], ids: list[str] | None = None) -> pd.DataFrame:
    n = len(segments)
    return pd.DataFrame({
        "customer_id": pd.array(ids or [f"c{i}" for i in range(n)], dtype="str"),
        "value_at_risk": [-1.5 * (i + 1) for i in range(n)],
        "rank": list(range(1, n + 1)),
        "risk_segment": pd.array(segments, dtype="str"),
        "reasons": pd.array(["-20 % spend"] * n, dtype="str"),
    })


def _summary(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"risk_segment": names, "customers": [1] * len(names),
                         "suggested_action": ["@mail"] * len(names)})


def _write(tmp: Path, scores: pd.DataFrame, names: list[str], **kw) -> dict[str, Path]:
    return write_scores(scores, tmp / "scores.csv", _summary(names), tmp / "summary.csv",
                        tmp / "segments", **kw)


# --------------------------------------------------------------------------- formulas


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=12), min_size=1, max_size=8),
       numbers=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=8))
def test_csv_text_cells_are_escaped_and_numbers_kept(texts, numbers, tmp_path_factory):
    """Every text cell read back from the CSV is the text, quoted when it would be a
    formula; numbers come back as the same numbers."""
    escaped = escape_formulas(pd.DataFrame({"t": pd.array(texts, dtype="str")}))["t"]
    assert escaped.tolist() == ["'" + t if t.startswith(FORMULA_PREFIXES) else t
                                for t in texts]
    texts = [t.replace("\r", "") for t in texts]  # pandas writes a bare CR unquoted
    n = min(len(texts), len(numbers))
    df = pd.DataFrame({"t": pd.array(texts[:n], dtype="str"), "x": numbers[:n]})
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    write_table(df, path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    for raw, (got, x), number in zip(texts[:n], rows, numbers[:n], strict=True):
        assert got == ("'" + raw if raw.startswith(FORMULA_PREFIXES) else raw)
        assert float(x) == pytest.approx(number)  # a negative number stays a number


def test_escape_leaves_numbers_parquet_and_machine_csv_alone(tmp_path):
    df = pd.DataFrame({"customer_id": pd.array(["=HYPERLINK(\"x\")", "007", "-7", "@a"],
                                               dtype="str"),
                       "amount": [-3.0, 1.0, -7.0, 0.0],
                       "note": pd.Categorical(["\tx", "ok", "+1", "ok"])})
    assert escape_formulas(df)["customer_id"].tolist() == ["'=HYPERLINK(\"x\")", "007", "'-7",
                                                           "'@a"]
    assert escape_formulas(df)["note"].tolist() == ["'\tx", "ok", "'+1", "ok"]
    assert escape_formulas(df)["amount"].tolist() == [-3.0, 1.0, -7.0, 0.0]
    write_table(df, tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), df)
    write_table(df, tmp_path / "raw.csv", escape=False)
    assert pd.read_csv(tmp_path / "raw.csv", dtype=str)["customer_id"].tolist() == [
        "=HYPERLINK(\"x\")", "007", "-7", "@a"]


def test_segment_lists_and_summary_are_escaped(tmp_path):
    _write(tmp_path, _scores(["a", "a"], ids=["=1+1", "c2"]), ["a"])
    listed = pd.read_csv(tmp_path / "segments" / "a.csv", dtype={"customer_id": str})
    assert listed["customer_id"].tolist() == ["'=1+1", "c2"]
    assert listed["value_at_risk"].tolist() == [-1.5, -3.0]
    assert listed["reasons"].tolist() == ["'-20 % spend"] * 2
    assert pd.read_csv(tmp_path / "summary.csv")["suggested_action"].tolist() == ["'@mail"]


# --------------------------------------------------------------------------- whole runs


def test_segment_files_of_an_earlier_run_do_not_remain(tmp_path):
    _write(tmp_path, _scores(["vip", "lapsed", "vip"]), ["vip", "lapsed", "standard"])
    assert sorted(p.name for p in (tmp_path / "segments").glob("*.csv")) == [
        "lapsed.csv", "standard.csv", "vip.csv"]
    _write(tmp_path, _scores(["at_risk"]), ["at_risk", "standard"])
    assert sorted(p.name for p in (tmp_path / "segments").glob("*.csv")) == [
        "at_risk.csv", "standard.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "segments",
                                                         "summary.csv"]


def test_failed_run_leaves_the_previous_outputs_and_no_litter(tmp_path):
    _write(tmp_path, _scores(["vip", "lapsed"]), ["vip", "lapsed"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    bad = _scores(["other"]).assign(rank=[object()])  # fails in the Parquet writer
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        write_scores(bad, tmp_path / "scores.parquet", _summary(["other"]),
                     tmp_path / "summary.csv", tmp_path / "segments")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_run_killed_while_committing_is_rolled_forward(tmp_path, monkeypatch):
    _write(tmp_path, _scores(["vip", "lapsed"]), ["vip", "lapsed"])
    real, calls = os.replace, []

    def dying_replace(src, dst):  # dies after the journal and the segment folder's moves
        if calls or Path(dst).name == JOURNAL:
            calls.append(dst)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, _scores(["new"]), ["new"])
    monkeypatch.setattr(os, "replace", real)
    assert (tmp_path / JOURNAL).exists()  # committed, not finished
    outputs = score_outputs(tmp_path / "scores.csv", tmp_path / "summary.csv",
                            tmp_path / "segments")
    outputs.recover()
    assert sorted(p.name for p in (tmp_path / "segments").iterdir()) == [MARKER, "new.csv"]
    assert pd.read_csv(tmp_path / "summary.csv")["risk_segment"].tolist() == ["new"]
    assert pd.read_csv(tmp_path / "scores.csv")["risk_segment"].tolist() == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "segments",
                                                         "summary.csv"]


def test_run_killed_while_staging_leaves_previous_outputs_and_litter_is_cleaned(tmp_path):
    _write(tmp_path, _scores(["vip"]), ["vip"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    killed = score_outputs(tmp_path / "scores.csv", tmp_path / "summary.csv",
                           tmp_path / "segments")
    write_table(_scores(["x"]), killed.stage("segments") / "x.csv")  # then the process died
    write_table(_scores(["x"]), killed.stage("scores"), fmt="csv")
    (tmp_path / ".scores.csv.abc123.tmp").write_text("partial")  # atomic_write litter
    litter = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert len(litter) == 3
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
            and ".tmp" not in str(p)} == before
    _write(tmp_path, _scores(["y"]), ["y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "segments",
                                                         "summary.csv"]


# --------------------------------------------------------------------------- paths first


def test_output_paths_are_checked_before_the_work(tmp_path):
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        OutputSet({"scores": tmp_path / "a_folder"}).check()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match="cannot write"):
        OutputSet({"scores": tmp_path / "a_file" / "scores.parquet"}).check()
    with pytest.raises(OutputPathError, match="is a file"):
        OutputSet({"s": tmp_path / "s.csv"}, {"segments": tmp_path / "a_file"}).check()
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "letter.docx").write_text("keep me")
    with pytest.raises(OutputPathError, match="did not write"):
        OutputSet({"s": tmp_path / "s.csv"}, {"segments": mine}).check()
    assert (mine / "letter.docx").read_text() == "keep me"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_folder_on_a_read_only_file_system_is_refused():
    """/proc takes no new files, even from root: like a read-only mount."""
    with pytest.raises(OutputPathError, match="cannot write to /proc"):
        OutputSet({"scores": Path("/proc/churnml-out/scores.parquet")}).check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="cannot write"):
            OutputSet({"scores": ro / "scores.parquet"}).check()
    finally:
        ro.chmod(0o700)


def test_cli_score_refuses_a_folder_as_out_before_any_work(tmp_path):
    from churnml.cli import app

    (tmp_path / "existing").mkdir()
    cfg = tmp_path / "cfg.yaml"
    # the store does not exist: the path check must fail first, quickly and without traceback
    cfg.write_text("data: {dataset: simulated, simulated_customers: 200}\n"
                   f"tracking: {{uri: 'sqlite:///{tmp_path / 'none' / 'mlflow.db'}'}}\n"
                   f"output_dir: {tmp_path / 'out'}\n")
    run = CliRunner().invoke(app, ["score", "--config", str(cfg), "--out",
                                   str(tmp_path / "existing")])
    assert run.exit_code == 2, run.output
    text = " ".join(run.output.split())
    assert "is a folder" in text and "Traceback" not in text
    assert "loading" not in text  # failed before loading models or data
    assert not (tmp_path / "none").exists()


def test_two_runs_at_once_never_mix_or_break(tmp_path):
    runs = {"a": ["vip", "lapsed"], "b": ["at_risk", "loyal", "new"]}
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            for _ in range(3):
                _write(tmp_path, _scores(runs[key]), runs[key])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lists = sorted(p.stem for p in (tmp_path / "segments").glob("*.csv"))
    summary = pd.read_csv(tmp_path / "summary.csv")["risk_segment"].tolist()
    scores = pd.read_csv(tmp_path / "scores.csv")["risk_segment"].tolist()
    assert lists == sorted(summary) and scores == summary and summary in runs.values()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "segments",
                                                         "summary.csv"]


def test_prepare_cleans_litter_of_killed_runs_before_the_work(tmp_path):
    _write(tmp_path, _scores(["vip"]), ["vip"])
    (tmp_path / ".segments.dead00000000.tmp").mkdir()
    (tmp_path / ".scores.csv.dead00000000.tmp").write_text("partial")
    score_outputs(tmp_path / "scores.csv", tmp_path / "summary.csv",
                  tmp_path / "segments").prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "segments",
                                                         "summary.csv"]
