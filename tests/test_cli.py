"""The `churnml metrics` / `retention` / `demo` commands, run in-process on real data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.data.datasets import load_cdnow
from churnml.metrics import kpi_table

runner = CliRunner()


@pytest.fixture(scope="module")
def cdnow_monthly_json() -> list[dict]:
    res = runner.invoke(app, ["metrics", "--dataset", "cdnow", "--period", "month",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_metrics_json_has_one_record_per_month(cdnow_monthly_json: list[dict]) -> None:
    periods = [r["period"] for r in cdnow_monthly_json]
    expected = [p.strftime("%Y-%m") for p in pd.period_range("1997-01", "1998-06", freq="M")]
    assert periods == expected
    for key in ("retention_rate", "churn_rate", "arpu", "repeat_purchase_rate",
                "active_customers"):
        assert all(key in r for r in cdnow_monthly_json)


def test_metrics_json_values_match_plain_pandas(cdnow_monthly_json: list[dict]) -> None:
    """Active customers (a purchase, amount > 0, in the month) and ARPU (net revenue /
    active customers) of each month, recomputed from the raw log."""
    tx = load_cdnow().transactions
    month = tx["ts"].dt.to_period("M").astype(str)
    buyers = tx[tx["amount"] > 0]
    active = buyers.groupby(month[buyers.index])["customer_id"].nunique()
    revenue = tx.groupby(month)["amount"].sum()
    for rec in cdnow_monthly_json:
        p = rec["period"]
        assert rec["active_customers"] == active[p]
        assert rec["arpu"] == pytest.approx(revenue[p] / active[p], rel=1e-9)
    # each customer who ever bought is new exactly once (68 CDNOW customers only have $0 rows)
    assert sum(r["new_customers"] for r in cdnow_monthly_json) == buyers["customer_id"].nunique()
    assert all(0 <= r["retention_rate"] <= 100 for r in cdnow_monthly_json[1:])


def test_metrics_csv_out_file_equals_library(tmp_path) -> None:
    out = tmp_path / "kpis.csv"
    res = runner.invoke(app, ["metrics", "--dataset", "cdnow", "--period", "quarter",
                              "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = pd.read_csv(out)
    lib = kpi_table(load_cdnow(), period="quarter")
    assert list(written["period"]) == [f"{t.year}-Q{t.quarter}" for t in lib["period"]]
    assert written["revenue"].to_numpy() == pytest.approx(lib["revenue"].to_numpy())


def test_retention_command_day_list(tmp_path) -> None:
    res = runner.invoke(app, ["retention", "--dataset", "cdnow", "--days", "7,30",
                              "--mode", "on-or-after", "--format", "json"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)
    assert [r["day"] for r in recs] == [7, 30]
    # rolling retention cannot rise with N
    assert recs[0]["retention"] >= recs[1]["retention"]


def test_bad_days_option_is_a_clear_error() -> None:
    res = runner.invoke(app, ["retention", "--dataset", "cdnow", "--days", "1,x"])
    assert res.exit_code == 2
    assert "--days must be comma-separated integers" in res.output


def test_bad_data_folder_names_table_and_column(tmp_path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,ts,amount\n1,2024-01-01,abc\n")
    res = runner.invoke(app, ["metrics", "--data", str(tmp_path)])
    assert res.exit_code == 2
    assert "transactions" in res.output and "amount" in res.output


def test_unknown_dataset_lists_the_valid_names() -> None:
    for command in (["score"], ["metrics"], ["train"]):
        res = runner.invoke(app, [*command, "--dataset", "simulatd"])
        assert res.exit_code == 2, res.output
        assert ("error: --dataset: unknown value 'simulatd'; valid: cdnow, simulated (did you "
                "mean 'simulated'?)") in " ".join(res.output.split())
        assert "pydantic" not in res.output and "https://" not in res.output
        assert "Traceback" not in res.output


def test_unknown_name_in_a_segment_rule_is_caught_before_models_or_data(tmp_path) -> None:
    """The store does not exist and the data are never read: the rule is checked first,
    and the error names the segment."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"dataset": "simulated"},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"},
        "scoring": {"segments": [
            {"name": "slipping", "priority": 5, "action": "call",
             "when": "churn_probabilty >= 0.5 AND days_since_last_purchase < 60"}]},
    }))
    res = runner.invoke(app, ["score", "--config", str(config)])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert ("scoring.segments[slipping].when: unknown name 'churn_probabilty' in "
            "'churn_probabilty >= 0.5 AND days_since_last_purchase < 60'; did you mean "
            "'churn_probability'?") in out
    assert "not found" not in out and "loading" not in out
    assert not (tmp_path / "none").exists()
