"""Subscriptions: bad rows are errors naming table, column and rows; overlapping rows of one
customer merge into coverage spells (with a warning) exactly as the contractual labels do."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from churnml import CustomerData, DataValidationError
from churnml.config import ChurnConfig
from churnml.data.loaders import load_folder
from churnml.data.subscriptions import coverage_spells, overlapping_rows
from churnml.errors import DataWarning
from churnml.labels import build_labels

DAY = pd.Timedelta(days=1)


def tx() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3], "ts": ["2024-01-05"] * 3,
                         "amount": [10.0, 20.0, 30.0]})


def subs(rows: list[tuple[int, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "start_ts", "end_ts"])


def _raises(**kwargs: object) -> str:
    with pytest.raises(DataValidationError) as info:
        CustomerData.from_frames(tx(), **kwargs)
    return str(info.value)


def test_end_before_start_names_the_rows() -> None:
    msg = _raises(subscriptions=subs([(1, "2024-01-01", "2024-02-01"),
                                      (2, "2024-03-01", "2024-02-01"),
                                      (3, "2024-01-01", "2023-12-31")]))
    assert "subscriptions.end_ts: subscription ends before it starts" in msg
    assert "2 row(s)" in msg and "row 1 ('2024-02-01')" in msg and "row 2 ('2023-12-31')" in msg


def test_term_end_before_start_is_an_error() -> None:
    table = subs([(1, "2024-01-01", None), (2, "2024-03-01", None)])
    table["term_end_ts"] = ["2024-06-01", "2024-02-01"]
    msg = _raises(subscriptions=table)
    assert "subscriptions.term_end_ts: subscription term ends before it starts" in msg
    assert "1 row(s); e.g. row 1 ('2024-02-01')" in msg


def test_end_after_data_end_is_an_error_naming_rows_and_data_end() -> None:
    table = subs([(1, "2024-01-01", "2024-03-01"),       # exactly at data.end: observable
                  (2, "2024-01-01", "2024-03-15"),       # after it
                  (3, "2024-01-01", None)])
    msg = _raises(subscriptions=table, end="2024-03-01")
    assert "subscriptions.end_ts: subscription ends after the end of the data" in msg
    assert "data.end = 2024-03-01 00:00:00" in msg
    assert "1 row(s); e.g. row 1 ('2024-03-15')" in msg
    ok = CustomerData.from_frames(tx(), subscriptions=table.iloc[[0, 2]], end="2024-03-01")
    assert len(ok.subscriptions) == 2
    # without data.end the data end is after the latest timestamp: nothing lies beyond it
    assert len(CustomerData.from_frames(tx(), subscriptions=table).subscriptions) == 3


def test_term_end_may_lie_beyond_the_data_end() -> None:
    table = subs([(1, "2024-01-01", None)])
    table["term_end_ts"] = ["2024-12-31"]
    data = CustomerData.from_frames(tx(), subscriptions=table, end="2024-03-01")
    assert data.subscriptions["term_end_ts"].iloc[0] == pd.Timestamp("2024-12-31")


def test_all_problems_reported_together() -> None:
    table = subs([(1, "2024-01-01", "2023-01-01"), (2, "2024-01-01", "2024-01-02")])
    bad_tx = tx().assign(amount=["x", 1.0, 2.0])
    with pytest.raises(DataValidationError) as info:
        CustomerData.from_frames(bad_tx, subscriptions=table)
    msg = str(info.value)
    assert "transactions.amount: not numeric" in msg and "ends before it starts" in msg


def test_bad_file_is_refused_before_anything_is_computed(tmp_path: Path) -> None:
    tx().to_csv(tmp_path / "transactions.csv", index=False)
    subs([(7, "2024-01-01", "2024-01-31"), (8, "2024-02-01", "2024-03-20")]).to_csv(
        tmp_path / "subscriptions.csv", index=False)
    with pytest.raises(DataValidationError, match=r"subscriptions\.end_ts: .* after the end "
                       r"of the data .* row 1 \('2024-03-20'\)"):
        load_folder(tmp_path, end="2024-03-01")


# --------------------------------------------------------------------------- overlaps

OVERLAPS = subs([
    (1, "2024-01-01", "2024-03-01"), (1, "2024-02-15", "2024-05-01"),   # plan change, overlap
    (1, "2024-05-01", "2024-06-01"),                                     # touches: same spell
    (1, "2024-08-01", None),                                             # later, open
    (2, "2024-01-01", None), (2, "2024-02-01", "2024-03-01"),           # inside an open row
    (3, "2024-01-01", "2024-02-01"), (3, "2024-02-10", "2024-04-01"),   # 9-day gap
])


def test_overlapping_rows_mask_by_hand() -> None:
    t = OVERLAPS.assign(start_ts=pd.to_datetime(OVERLAPS["start_ts"]),
                        end_ts=pd.to_datetime(OVERLAPS["end_ts"]))
    assert overlapping_rows(t).tolist() == [False, True, False, False,
                                            False, True, False, False]


def test_overlaps_load_with_a_warning_counting_them() -> None:
    with pytest.warns(DataWarning, match=r"subscriptions: 2 row\(s\) of 2 customer\(s\) start "
                      r"before an earlier subscription .* row\(s\) 1, 5\)"):
        data = CustomerData.from_frames(tx(), subscriptions=OVERLAPS)
    assert len(data.subscriptions) == len(OVERLAPS)  # rows kept; the merge is a reading rule


def test_no_warning_without_overlaps() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        CustomerData.from_frames(tx(), subscriptions=OVERLAPS.iloc[[0, 2, 3, 6, 7]])


def test_coverage_spells_by_hand() -> None:
    with pytest.warns(DataWarning):
        data = CustomerData.from_frames(tx(), subscriptions=OVERLAPS)
    spells = coverage_spells(data.subscriptions)
    ts = pd.Timestamp
    assert spells[["customer_id", "spell", "n_subscriptions"]].values.tolist() == [
        [1, 0, 3], [1, 1, 1], [2, 0, 2], [3, 0, 1], [3, 1, 1]]
    assert spells["start_ts"].tolist() == [ts("2024-01-01"), ts("2024-08-01"),
                                           ts("2024-01-01"), ts("2024-01-01"),
                                           ts("2024-02-10")]
    assert spells["end_ts"].isna().tolist() == [False, True, True, False, False]
    assert spells["end_ts"].iloc[0] == ts("2024-06-01")
    graced = coverage_spells(data.subscriptions, grace_days=14)
    assert graced.loc[graced["customer_id"] == 3, "n_subscriptions"].tolist() == [2]
    assert graced.loc[graced["customer_id"] == 3, "end_ts"].tolist() == [ts("2024-04-01")]


@pytest.mark.parametrize("grace", [0, 14])
def test_spells_agree_with_contractual_labels(grace: int) -> None:
    """The churn label of every customer at risk equals 'its coverage spell ends within the
    horizon', computed from :func:`coverage_spells` independently of the label SQL."""
    with pytest.warns(DataWarning):
        data = CustomerData.from_frames(tx().assign(ts="2024-12-31"), subscriptions=OVERLAPS)
    horizon = 60
    churn = ChurnConfig(kind="contractual", horizon_days=horizon, resubscribe_grace_days=grace)
    cutoffs = pd.date_range("2024-01-15", "2024-09-01", freq="SMS")
    labels = build_labels(data, cutoffs, churn)
    spells = coverage_spells(data.subscriptions, grace_days=grace)
    rows = data.subscriptions
    expected = {}
    for c in cutoffs:
        active = rows[(rows["start_ts"] < c) & (rows["end_ts"].isna() | (rows["end_ts"] >= c))]
        on = spells[spells["customer_id"].isin(active["customer_id"])
                    & (spells["start_ts"] < c) & (spells["end_ts"].isna()
                                                  | (spells["end_ts"] >= c))]
        assert len(on) == active["customer_id"].nunique()
        for r in on.itertuples():
            gone = pd.notna(r.end_ts) and r.end_ts < c + horizon * DAY
            expected[(int(r.customer_id), c)] = int(gone)
    got = {(int(r.customer_id), r.cutoff): int(r.churned) for r in labels.itertuples()}
    assert got == expected
    assert 0 < sum(expected.values()) < len(expected)


def test_cli_refuses_bad_subscriptions_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from churnml.cli import app

    tx().to_csv(tmp_path / "transactions.csv", index=False)
    subs([(1, "2024-01-01", "2024-01-31"), (2, "2024-02-01", "2024-03-20"),
          (3, "2024-02-01", "2024-01-20")]).to_csv(tmp_path / "subscriptions.csv", index=False)
    config = tmp_path / "shop.yaml"
    config.write_text(f"data: {{dir: {tmp_path}, end: '2024-03-01'}}\n"
                      "churn: {kind: contractual}\n")
    out = tmp_path / "out" / "features.parquet"
    result = CliRunner().invoke(app, ["features", "--config", str(config), "--cutoff",
                                      "2024-02-15", "--out", str(out)])
    assert result.exit_code != 0
    message = " ".join(result.output.split())  # the CLI wraps long lines
    assert "subscriptions.end_ts: subscription ends before it starts" in message
    assert "subscription ends after the end of the data" in message
    assert "row 1 ('2024-03-20')" in message and "row 2 ('2024-01-20')" in message
    assert not out.exists() and not out.parent.exists()


def test_contractual_labels_respect_fixed_terms() -> None:
    """A subscription whose term has run out by the cutoff is completed (not at risk); one
    completing its term inside the horizon is no churn; a withdrawal inside it is."""
    table = subs([(1, "2024-01-01", None), (2, "2024-01-01", None),
                   (3, "2024-01-01", "2024-03-10"), (4, "2024-01-01", None)])
    table["term_end_ts"] = ["2024-02-20", "2024-03-20", "2024-06-01", None]
    data = CustomerData.from_frames(tx().assign(ts="2024-12-31"), subscriptions=table)
    churn = ChurnConfig(kind="contractual", horizon_days=30, resubscribe_grace_days=0)
    labels = build_labels(data, "2024-03-01", churn)
    assert dict(zip(labels["customer_id"], labels["churned"], strict=True)) == {
        2: 0, 3: 1, 4: 0}


def test_simulated_subscriptions_do_not_overlap() -> None:
    """The simulator's returns start after the previous spell ends: no overlap warning, and
    every row is its own coverage spell."""
    from churnml.data.simulate import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = simulate(1_500, seed=5, contractual=True)
    rows = data.subscriptions
    assert rows["customer_id"].duplicated().any()  # some customers came back
    assert not overlapping_rows(rows).any()
    assert len(coverage_spells(rows)) == len(rows)
