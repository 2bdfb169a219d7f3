"""OULAD (Open University course registrations) through the data contract with
``configs/examples/oulad.yaml``: counts and the Kaplan-Meier curve of its README; and the
loader's lookups (a file joined to a table's rows) that the mapping needs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.config import Lookup, TableSource, load_config
from churnml.data.loaders import join_lookups, load_data, load_folder
from churnml.errors import DataValidationError, DataWarning

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "examples" / "oulad.yaml"
DAY = pd.Timedelta(days=1)


def oulad_dir() -> Path | None:
    """``shared/data/oulad`` beside the checkout (where the config points) or beside a
    parent of it."""
    for parent in CONFIG.parents:
        if (parent / "shared" / "data" / "oulad").is_dir():
            return parent / "shared" / "data" / "oulad"
    return None


@pytest.fixture(scope="module")
def oulad_config():
    cfg = load_config(CONFIG)
    found = oulad_dir()
    if found is None:
        pytest.skip(f"OULAD files not found ({cfg.data.dir}, shared/data/oulad beside the "
                    "checkout)")
    cfg.data.dir = str(found)
    return cfg


@pytest.fixture(scope="module")
def oulad(oulad_config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # count-only transactions
        return load_data(oulad_config)


def day0(customers: pd.DataFrame) -> pd.Series:
    """Presentation start by the documented convention: the first day of the start month
    (B = February, J = October), by customer id."""
    code = customers.set_index("customer_id")["code_presentation"]
    month = code.str[4].map({"B": 2, "J": 10})
    return pd.to_datetime(code.str[:4] + "-" + month.astype(str) + "-01")


def kaplan_meier(duration: np.ndarray, event: np.ndarray, times: list[float]) -> np.ndarray:
    """Product-limit estimate, written out as an independent reference."""
    t_ev = np.unique(duration[event])
    d = np.array([np.sum(event & (duration == u)) for u in t_ev])
    n = np.array([np.sum(duration >= u) for u in t_ev])
    surv = np.cumprod(1 - d / n)
    return np.array([surv[t_ev <= t][-1] if np.any(t_ev <= t) else 1.0 for t in times])


def test_counts_match_the_dataset_readme(oulad) -> None:
    subs, cust = oulad.subscriptions, oulad.customers
    assert len(subs) == len(cust) == len(oulad.transactions) == 32_593
    assert subs["customer_id"].is_unique and set(subs["customer_id"]) == set(cust["customer_id"])
    assert cust["id_student"].nunique() == 28_785
    assert cust["code_presentation"].value_counts().to_dict() == {
        "2013B": 4_684, "2013J": 8_845, "2014B": 7_804, "2014J": 11_260}
    ended = subs["end_ts"].notna()
    assert ended.sum() == 10_072
    start = day0(cust).reindex(subs["customer_id"]).to_numpy()
    assert (ended & (subs["end_ts"].to_numpy() <= start)).sum() == 3_097
    assert "final_result" not in cust.columns  # the outcome never enters
    assert oulad.currency == "purchases"  # registrations are count-only purchases


def test_one_enrolment_mapped_by_hand(oulad, oulad_config) -> None:
    """Raw row 2: AAA 2013J, student 30268, registered day -92, withdrew day 12; 2013J lasts
    268 days and starts 2013-10-01."""
    raw = pd.read_csv(Path(oulad_config.data.dir) / "studentRegistration.csv.gz")
    assert raw.loc[2, ["id_student", "date_registration", "date_unregistration"]].tolist() == [
        30268, -92.0, 12.0]
    row = oulad.subscriptions.loc[2]
    assert row["customer_id"] == "AAA-2013J-30268" and row["plan"] == "AAA"
    assert row["start_ts"] == pd.Timestamp("2013-10-01") - 92 * DAY
    assert row["end_ts"] == pd.Timestamp("2013-10-13")
    assert row["term_end_ts"] == pd.Timestamp("2013-10-01") + 268 * DAY
    no_reg = raw["date_registration"].isna()
    assert no_reg.sum() == 45  # start: day 0, or the withdrawal day when earlier
    starts = oulad.subscriptions.loc[no_reg, "start_ts"].to_numpy()
    begin = day0(oulad.customers).reindex(oulad.subscriptions.loc[no_reg, "customer_id"])
    early = raw.loc[no_reg, "date_unregistration"].clip(upper=0).fillna(0).to_numpy()
    assert (starts == (begin.to_numpy() + early * np.timedelta64(1, "D"))).all()


def test_kaplan_meier_after_day_0_matches_the_readme(oulad) -> None:
    subs = oulad.subscriptions.set_index("customer_id")
    start = day0(oulad.customers).reindex(subs.index)
    at_risk = subs["end_ts"].isna() | (subs["end_ts"] > start)  # pre-start withdrawals out
    subs, start = subs[at_risk], start[at_risk]
    length = (subs["term_end_ts"] - start) / DAY
    assert length.between(234, 269).all()
    ended = ((subs["end_ts"] - start) / DAY).to_numpy()
    event = ~np.isnan(ended) & (ended <= length.to_numpy())
    duration = np.where(event, ended, length.to_numpy())
    km = kaplan_meier(duration, event, [30, 90, 180, 268])
    np.testing.assert_allclose(km, [0.931, 0.867, 0.789, 0.763], atol=5e-4)


# --------------------------------------------------------------------------- lookups


def _files(tmp_path: Path, lookup_rows: str) -> Path:
    (tmp_path / "rows.csv").write_text("course,term,who\nA,1,x\nB,2,y\nA,1,z\n")
    (tmp_path / "courses.csv").write_text(lookup_rows)
    return tmp_path


def test_lookup_joins_many_rows_to_one(tmp_path: Path) -> None:
    d = _files(tmp_path, "course,term,length\nB,2,30\nA,1,20\nC,3,99\n")
    rows = pd.read_csv(d / "rows.csv", dtype={"term": str})  # keys compared as text
    out = join_lookups(rows, "subscriptions", d, [Lookup(path="courses.csv",
                                                         keys=["course", "term"])])
    assert out["length"].tolist() == [20, 30, 20]
    assert out.index.tolist() == [0, 1, 2] and out["who"].tolist() == ["x", "y", "z"]


@pytest.mark.parametrize(("lookup_rows", "on", "parts"), [
    ("course,term,length\nA,1,20\nA,1,21\nB,2,3\n", ["course", "term"],
     ["key repeated in", "courses.csv", "2 row(s); e.g. row 0 ('A/1'), row 1 ('A/1')"]),
    ("course,term,length\nA,1,20\n", ["course", "term"],
     ["no row of", "has this key", "1 row(s); e.g. row 1 ('B/2')"]),
    ("course,length\nA,20\n", ["course", "term"],
     ["key column 'term' not in", "courses.csv"]),
    ("course,term,who\nA,1,q\nB,2,r\n", ["course", "term"],
     ["column 'who' is in both", "csv_options.usecols"]),
])
def test_lookup_problems_name_file_and_rows(tmp_path: Path, lookup_rows: str, on: list[str],
                                            parts: list[str]) -> None:
    d = _files(tmp_path, lookup_rows)
    with pytest.raises(DataValidationError) as info:
        join_lookups(pd.read_csv(d / "rows.csv"), "subscriptions", d,
                     [Lookup(path="courses.csv", keys=on)])
    msg = str(info.value)
    assert msg.startswith("subscriptions.") and "lookups[0]" in msg
    for part in parts:
        assert part in msg


def test_lookup_columns_feed_expressions_in_load_folder(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,ts,amount\n1,2024-01-05,3\n")
    (tmp_path / "subs.csv").write_text("id,plan_code,start\n1,m,2024-01-01\n")
    (tmp_path / "plans.csv").write_text("plan_code,months\nm,1\ny,12\n")
    tables = {"subscriptions": TableSource(
        path="subs.csv", lookups=[Lookup(path="plans.csv", keys=["plan_code"])],
        columns={"customer_id": "id", "start_ts": "start", "plan": "plan_code"},
        expressions={"end_ts": "CAST(NULL AS TIMESTAMP)",
                     "term_end_ts": "CAST(start AS DATE) + INTERVAL (months) MONTH"})}
    data = load_folder(tmp_path, tables)
    assert data.subscriptions["term_end_ts"].tolist() == [pd.Timestamp("2024-02-01")]
    assert data.subscriptions["plan"].tolist() == ["m"]


def test_the_configured_grid_fits_the_data(oulad, oulad_config) -> None:
    from churnml.data.customer_data import data_end
    from churnml.data.survival_grid import check_survival_grid, data_span_days

    s = oulad_config.survival
    assert (s.period_days, s.grid_periods) == (7, 39)  # 273 days >= the longest module, 269
    check_survival_grid(s, oulad)
    # the data end after the last term end: 2014J (2014-10-01) + 269 days = 2015-06-27
    assert data_end(oulad) == pd.Timestamp("2015-06-28")
    first = oulad.subscriptions["start_ts"].min()
    assert data_span_days(oulad) == (pd.Timestamp("2015-06-28") - first) / DAY


def test_contractual_labels_on_oulad(oulad, oulad_config) -> None:
    """Churn labels at 2014-03-01 (2013J running, 2014B just started): withdrawals within the
    30-day horizon, recomputed from the subscriptions; enrolments of finished presentations
    (2013B ended in 2013) are not at risk."""
    from churnml.labels import build_labels

    cutoff = pd.Timestamp("2014-03-01")
    labels = build_labels(oulad, cutoff, oulad_config.churn).set_index("customer_id")
    s = oulad.subscriptions.set_index("customer_id")
    on = ((s["start_ts"] < cutoff) & (s["end_ts"].isna() | (s["end_ts"] >= cutoff))
          & (s["term_end_ts"] > cutoff))
    expected = (s.loc[on, "end_ts"] < cutoff + 30 * DAY).astype(int)
    assert set(labels.index) == set(expected.index)
    assert (labels["churned"] == expected.reindex(labels.index)).all()
    presentations = oulad.customers.set_index("customer_id").loc[labels.index,
                                                                 "code_presentation"]
    assert set(presentations) == {"2013J", "2014B"}
    assert 0 < labels["churned"].mean() < 0.1
