"""Hostile and ambiguous inputs to campaigns, exported models and the minimal Spark input.

Each test names the case it covers; a refusal is checked to leave every file as it was
(folder listings and bytes compared before and after).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, DataConfig, load_config
from churnml.data.loaders import load_folder
from churnml.errors import ConfigError, DataWarning, ModelMismatchError
from churnml.models import ChurnClassifier, LTVModel
from churnml.models._state import ModelStateError, write_state
from churnml.scoring.loading import load_exported_models
from churnml.training.lineage import lineage, lineage_tags
from churnml.uplift.control import plan_campaign
from churnml.uplift.targeting import select_targets, targeting_values
from churnml.uplift.workflow import campaign_dir, plan

runner = CliRunner()
HOSTILE_IDS = ["007", "7", "-0", "=X", "NaN", "+1", "@a", "null"]
IDS = HOSTILE_IDS + [f"c{i:02d}" for i in range(32)]  # 40 customers, every other one at risk
CUTOFF = pd.Timestamp("2024-03-01")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def scores(cutoff: pd.Timestamp = CUTOFF) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = len(IDS)
    return pd.DataFrame({
        "customer_id": pd.Series(IDS, dtype=object),
        "risk_segment": np.where(np.arange(n) % 2 == 0, "at_risk", "loyal"),
        "churn_probability": rng.uniform(0, 1, n),
        "value_at_risk": rng.uniform(1, 100, n),
        "value_if_retained": rng.uniform(1, 200, n),
        "cutoff": cutoff,
    })


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    """A data folder (transactions of every customer), scores in the output folder and a
    config: the state a user has before `churnml campaign plan`."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    pd.DataFrame({"customer_id": IDS, "ts": "2024-01-05", "amount": 10.0}).to_csv(
        data / "transactions.csv", index=False)
    scores().to_parquet(out / "scores.parquet", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: hostile\ndata:\n  dir: data\nuplift:\n  control_share: 0.25\n"
                   "  arm: coupon\n  cost_per_contact: 1.0\noutput_dir: out\n")
    return {"root": tmp_path, "data": data, "out": out, "cfg": cfg,
            "log": data / "campaigns.csv"}


def cli(env: dict[str, Path], *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["campaign", "plan", "--config", str(env["cfg"]), *args])
    return res.exit_code, " ".join(res.output.split())


# ----------------------------------------------------------------------------- logs are data


def test_campaign_log_round_trips_text_ids_and_replanning_never_duplicates(env) -> None:
    """Issue 19: `plan --log` escaped `-0` as `'-0` and re-read the log with a plain CSV
    read (`007` -> `7`); the log must reload into the data contract unchanged."""
    log = env["log"]
    rc, out = cli(env, "--campaign", "c1", "--segments", "at_risk", "--log", str(log))
    assert rc == 0, out
    first = log.read_bytes()
    assert b"'" not in first  # a data table: no spreadsheet escaping
    rc, out = cli(env, "--campaign", "c2", "--segments", "loyal", "--log", str(log),
                  "--contact-date", "2024-03-02T09:30")
    assert rc == 0, out
    second = log.read_bytes()
    assert second.startswith(first)  # the earlier campaign's rows byte for byte
    # planning c1 again, identically: same files, nothing appended
    folder = campaign_dir(load_config(env["cfg"]), "c1")
    files = snapshot(folder)
    rc, out = cli(env, "--campaign", "c1", "--segments", "at_risk", "--log", str(log))
    assert rc == 0, out
    assert log.read_bytes() == second and snapshot(folder) == files

    loaded = load_folder(env["data"]).campaigns
    assert sorted(loaded["customer_id"]) == sorted(IDS)  # 007, 7, -0, =X, NaN as they were
    assert not loaded.duplicated(["customer_id", "campaign_id"]).any()
    assert loaded.groupby("campaign_id")["ts"].first().to_dict() == {
        "c1": CUTOFF, "c2": pd.Timestamp("2024-03-02 09:30")}
    contacts = pd.read_csv(folder / "contacts.csv", dtype=str, keep_default_na=False)
    assert sorted(contacts["customer_id"]) == sorted(IDS[0::2])
    # the lists people open in spreadsheets stay escaped
    (sent,) = (folder / "to_contact").glob("*.csv")
    listed = pd.read_csv(sent, dtype=str, keep_default_na=False)["customer_id"]
    treated = contacts.loc[contacts["arm"] == "coupon", "customer_id"]
    assert sorted(listed.str.removeprefix("'")) == sorted(treated)
    assert any(v.startswith("'") for v in listed)
    assert not any(v.startswith(("=", "-", "+", "@")) for v in listed)


def test_contact_date_is_iso_8601_only(env) -> None:
    """Issue 19: `--contact-date 05/01/2024` was read as 1 May; `--cutoff` refuses it."""
    before = snapshot(env["root"])
    rc, out = cli(env, "--campaign", "c1", "--contact-date", "05/01/2024", "--log",
                  str(env["log"]))
    assert rc == 2 and "--contact-date '05/01/2024': not an ISO 8601 date" in out
    assert snapshot(env["root"]) == before
    with pytest.raises(ValueError, match="not an ISO 8601 date"):  # the Python API too
        plan_campaign(scores(), "c1", contact_ts="05/01/2024")


def test_control_share_leaving_a_segment_without_controls_is_refused(env) -> None:
    """Issue 19: `--control-share 0.0001` gave 300 treated and 0 control without a word."""
    before = snapshot(env["root"])
    rc, out = cli(env, "--campaign", "c1", "--control-share", "0.0001", "--log",
                  str(env["log"]))
    assert rc == 2
    assert "segment 'at_risk': 20 customer(s) x control share 0.0001 = 0.00 expected " \
           "controls" in out and "segment 'loyal'" in out
    assert "uplift.min_control_per_segment is 1" in out
    assert snapshot(env["root"]) == before
    # the minimum is configurable: 6 controls per segment of 20 need a share of 0.3
    env["cfg"].write_text(env["cfg"].read_text().replace(
        "  arm: coupon\n", "  arm: coupon\n  min_control_per_segment: 6\n"))
    rc, out = cli(env, "--campaign", "c1")
    assert rc == 2 and "5.00 expected controls" in out
    rc, out = cli(env, "--campaign", "c1", "--control-share", "0.3")
    assert rc == 0, out


def test_targeting_from_an_older_cutoff_than_the_scores_is_refused(env) -> None:
    """Issue 19: `plan` silently used a targeting.parquet older than the current scores."""
    old = targeting_values(scores(pd.Timestamp("2024-02-01")), np.full(len(IDS), 0.1))
    old.to_parquet(env["out"] / "targeting.parquet", index=False)
    before = snapshot(env["root"])
    rc, out = cli(env, "--campaign", "c1", "--log", str(env["log"]))
    assert rc == 2
    assert "targeting values are from cutoff 2024-02-01 00:00:00 but the current scores" in out
    assert "are from cutoff 2024-03-01 00:00:00" in out
    assert snapshot(env["root"]) == before
    current = targeting_values(scores(), np.full(len(IDS), 0.1))
    current.to_parquet(env["out"] / "targeting.parquet", index=False)
    rc, out = cli(env, "--campaign", "c1")
    assert rc == 0, out


def test_customers_without_a_targeting_value_or_score_are_left_out_with_a_warning(env) -> None:
    """Issue 19: customers with a NaN targeting value or NaN scores were contacted."""
    frame = targeting_values(scores(), np.full(len(IDS), 0.1))
    frame.loc[frame["customer_id"] == "007", "targeting_value"] = np.nan
    frame.loc[frame["customer_id"] == "-0", "churn_probability"] = np.nan
    cfg = load_config(env["cfg"])
    with pytest.warns(DataWarning, match=r"2 customer\(s\) with no targeting_value or "
                      r"churn_probability left out .*'007', '-0'"):
        result, _ = plan(cfg, frame, "c1")
    assert not {"007", "-0"} & set(result.contacts["customer_id"])
    assert len(result.contacts) == len(IDS) - 2
    rc, out = cli(env, "--campaign", "c2", "--scores", str(_parquet(frame, env["root"])))
    assert rc == 0 and "warning: 2 customer(s) with no targeting_value" in out


def _parquet(frame: pd.DataFrame, root: Path) -> Path:
    path = root / "targeting_nan.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_evaluations_table_keeps_other_campaigns_rows_byte_for_byte(tmp_path) -> None:
    """Issue 19: the all-campaigns evaluation table was escaped (`-0` -> `'-0`) and re-read
    with a plain CSV read (`007` -> `7`) each time a campaign was evaluated."""
    from churnml import CustomerData
    from churnml.config import default_config
    from churnml.uplift.workflow import ALL_EVALUATIONS_FILE, evaluate

    ids = list(range(1, 9))
    tx = pd.DataFrame({"customer_id": ids * 2,
                       "ts": ["2024-01-10"] * 8 + ["2024-03-10"] * 4 + ["2024-05-20"] * 4,
                       "amount": 10.0})
    contact = pd.Timestamp("2024-03-01")
    log = pd.DataFrame({"customer_id": ids, "campaign_id": ["007"] * 4 + ["-0"] * 4,
                        "ts": contact, "arm": ["coupon", "control"] * 4, "cost": 1.0})
    data = CustomerData.from_frames(tx, campaigns=log)
    cfg = default_config()
    cfg.output_dir = str(tmp_path / "out")
    cfg.churn.horizon_days = 30
    table = tmp_path / "out" / ALL_EVALUATIONS_FILE
    evaluate(cfg, data, "007", log_mlflow=False)
    first = table.read_bytes()
    evaluate(cfg, data, "-0", log_mlflow=False)
    second = table.read_bytes()
    assert second.startswith(first) and b"'" not in second
    rows = pd.read_csv(table, dtype=str, keep_default_na=False)
    assert rows["campaign_id"].unique().tolist() == ["007", "-0"]
    evaluate(cfg, data, "007", log_mlflow=False)  # evaluated again: replaced, not doubled
    again = pd.read_csv(table, dtype=str, keep_default_na=False)
    assert sorted(again["campaign_id"]) == sorted(rows["campaign_id"])


# ----------------------------------------------------------------------------- whole plan first


def test_replanning_an_existing_campaign_id_writes_nothing(env, tmp_path) -> None:
    """Issue 17: re-planning an id was refused only after contacts.csv, campaign_log.csv and
    a segment list had been overwritten."""
    rc, out = cli(env, "--campaign", "c1", "--segments", "at_risk", "--log", str(env["log"]))
    assert rc == 0, out
    before = snapshot(env["root"])
    rc, out = cli(env, "--campaign", "c1", "--segments", "loyal", "--log", str(env["log"]))
    assert rc == 2 and "campaign 'c1' is already planned there" in out
    assert snapshot(env["root"]) == before
    # another output folder, the same log: the log refuses it, still before any write
    other = tmp_path / "other.yaml"
    other.write_text(env["cfg"].read_text().replace("output_dir: out", "output_dir: out2"))
    before["other.yaml"] = other.read_bytes()
    res = runner.invoke(app, ["campaign", "plan", "--config", str(other), "--campaign", "c1",
                              "--segments", "loyal", "--log", str(env["log"]),
                              "--scores", str(env["out"] / "scores.parquet")])
    assert res.exit_code == 2 and "'c1' is already in the log" in " ".join(res.output.split())
    assert snapshot(env["root"]) == before


def test_cost_budget_without_a_cost_and_bad_budgets_are_refused_by_one_validation(env) -> None:
    """Issue 17: `budget_cost` with `cost_per_contact: 0` was ignored; the Python API's
    `select_targets(budget_contacts=-5)` returned all but the last 5 customers."""
    env["cfg"].write_text(env["cfg"].read_text().replace("cost_per_contact: 1.0",
                                                         "cost_per_contact: 0\n  budget_cost: 50"))
    with pytest.raises(ConfigError, match="budget_cost .50.0. needs a positive "
                       "cost_per_contact"):
        load_config(env["cfg"])
    before = snapshot(env["root"])
    rc, out = cli(env, "--campaign", "c1", "--log", str(env["log"]))
    assert rc == 2 and "needs a positive cost_per_contact" in out
    assert snapshot(env["root"]) == before
    tv = targeting_values(scores(), np.linspace(0.1, 0.5, len(IDS)))
    for kwargs, message in [({"budget_contacts": -5}, "budget_contacts: Input should be "
                             "greater than 0"),
                            ({"budget_cost": 10.0}, "needs a positive cost_per_contact"),
                            ({"budget_cost": 10.0, "cost": 0.0}, "needs a positive"),
                            ({"budget_cost": -1.0, "cost": 1.0}, "budget_cost: Input should "
                             "be greater than 0")]:
        with pytest.raises(ConfigError, match=message):
            select_targets(tv, **kwargs)
        if "cost" not in kwargs:
            with pytest.raises(ConfigError, match=message):
                plan_campaign(tv, "c", **kwargs)
    assert len(select_targets(tv, budget_contacts=5)) == 5
    assert len(select_targets(tv, budget_cost=7.5, cost=2.5)) == 3


# ----------------------------------------------------------------------------- exported models

CHURN, LTV = "hostile-churn", "hostile-ltv"
FAST = {"n_estimators": 20, "n_jobs": 1}


@pytest.fixture(scope="module")
def export_parts(model_data) -> dict:
    """A churn and a value model, and a value model fitted on fewer features."""
    X, y = model_data.X_train, model_data.churn_train
    return {"churn": ChurnClassifier(**FAST).fit(X, y),
            "ltv": LTVModel(kind="tweedie", balance=False, **FAST).fit(X, model_data.ltv_train),
            "ltv_fewer": LTVModel(kind="tweedie", balance=False, **FAST).fit(
                X.drop(columns=["noise"]), model_data.ltv_train)}


def scoring_config() -> Config:
    return Config(name="hostile", data=DataConfig(dataset="simulated"))


def write_card(folder: Path, name: str, est, tags: dict | None = None) -> Path:
    """``<name>.model.json`` and its card, as `churnml export` writes them."""
    import hashlib

    folder.mkdir(exist_ok=True)
    model = write_state(est, folder / f"{name}.model.json")
    card = {"name": name, "version": "1", "run_id": "run-1", "file": model.name,
            "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
            "features": [str(f) for f in est.feature_names_in_],
            "tags": lineage_tags(scoring_config()) if tags is None else tags}
    (folder / f"{name}.json").write_text(json.dumps(card))
    return model


def rehash(folder: Path, name: str) -> None:
    """An attacker with write access updates the card's hash after editing the model."""
    import hashlib

    card_path = folder / f"{name}.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = hashlib.sha256((folder / card["file"]).read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))


def export_folder(root: Path, parts: dict) -> Path:
    folder = root / "models"
    write_card(folder, CHURN, parts["churn"])
    write_card(folder, LTV, parts["ltv"])
    return folder


def test_exported_pair_loads_as_it_is(tmp_path, export_parts, model_data) -> None:
    folder = export_folder(tmp_path, export_parts)
    models = load_exported_models(folder, CHURN, LTV, expected=lineage(scoring_config()))
    X = model_data.X_test
    np.testing.assert_array_equal(models.churn.predict_proba(X),
                                  export_parts["churn"].predict_proba(X))


LOADER = textwrap.dedent("""
    import sys
    from churnml.errors import ChurnmlError
    from churnml.scoring.loading import load_exported_models
    try:
        load_exported_models(sys.argv[1], sys.argv[2], sys.argv[3])
    except ChurnmlError as exc:
        print(type(exc).__name__, exc)
        sys.exit(3)
    print("loaded")
""")


@pytest.mark.parametrize("edit", ["leaf_count", "array_length", "tree_sizes", "split_feature",
                                  "child_cycle"])
def test_edited_lightgbm_text_is_an_error_naming_the_file(tmp_path, export_parts, edit) -> None:
    """Issue 19: a LightGBM text model edited in an export folder (card hash updated) aborted
    the process (SIGABRT, rc 134) with `[LightGBM] [Fatal]` lines and no churnml message;
    out-of-range split features were even predicted with; sizes in `tree_sizes` that no
    longer match the trees made LightGBM's parallel parser abort. Loaded in a child process so an
    abort cannot take the test run down."""
    folder = export_folder(tmp_path, export_parts)
    path = folder / f"{CHURN}.model.json"
    doc = json.loads(path.read_text())
    text = doc["state"]["booster"]["model"]
    tree = text.index("Tree=0\n")
    head, block = text[:tree], text[tree:]
    if edit == "leaf_count":
        n = int(block.split("num_leaves=")[1].split("\n")[0])
        block = block.replace(f"num_leaves={n}", f"num_leaves={n + 1}", 1)
    elif edit == "array_length":
        line = block.split("leaf_value=")[1].split("\n")[0]
        block = block.replace(line, line.rsplit(" ", 1)[0], 1)
    elif edit == "tree_sizes":
        sizes = head.split("tree_sizes=")[1].split("\n")[0]
        head = head.replace(sizes, " ".join(str(int(s) - 7) for s in sizes.split()), 1)
        block = block.replace("Tree=1\n", "Tree=1\nextra=1\n", 1)
    elif edit == "split_feature":
        line = block.split("split_feature=")[1].split("\n")[0]
        block = block.replace(f"split_feature={line}",
                              "split_feature=" + " ".join(["99"] * len(line.split())), 1)
    else:  # the root's left child points back at the root
        line = block.split("left_child=")[1].split("\n")[0]
        block = block.replace(f"left_child={line}",
                              "left_child=" + " ".join(["0", *line.split()[1:]]), 1)
    doc["state"]["booster"]["model"] = head + block
    path.write_text(json.dumps(doc))
    rehash(folder, CHURN)
    res = subprocess.run([sys.executable, "-c", LOADER, str(folder), CHURN, LTV],
                         capture_output=True, text=True, timeout=600)
    if edit == "tree_sizes":  # sizes that disagree with the trees are not relied upon
        assert (res.returncode, res.stdout) == (0, "loaded\n"), res.stderr[-2000:]
        return
    assert res.returncode == 3, (res.returncode, res.stdout, res.stderr[-2000:])
    assert res.stdout.startswith(f"ModelStateError {path}: ")
    assert "LightGBM model text" in res.stdout or "unreadable LightGBM model" in res.stdout
    assert "[Fatal]" not in res.stdout + res.stderr


def test_a_booster_of_another_model_is_refused_naming_the_file_and_features(
        tmp_path, export_parts) -> None:
    """Issue 19: the LTV booster in the churn model's place failed with a reshape error
    naming no file."""
    folder = export_folder(tmp_path, export_parts)
    churn_path = folder / f"{CHURN}.model.json"
    # the value model's booster (fitted on one feature fewer) inside the churn model
    doc = json.loads(churn_path.read_text())
    other = json.loads(write_state(export_parts["ltv_fewer"], tmp_path / "x.json").read_text())
    doc["state"]["booster"] = dict(other["state"]["boosters"]["value_model_"],
                                   objective="binary")
    churn_path.write_text(json.dumps(doc))
    rehash(folder, CHURN)
    with pytest.raises(ModelStateError) as info:
        load_exported_models(folder, CHURN, LTV)
    msg = str(info.value)
    assert msg.startswith(f"{churn_path}: ")
    assert "objective 'tweedie' in the text, 'binary' in the state" in msg
    doc["state"]["booster"] = other["state"]["boosters"]["value_model_"]
    churn_path.write_text(json.dumps(doc))
    rehash(folder, CHURN)
    with pytest.raises(ModelStateError) as info:
        load_exported_models(folder, CHURN, LTV)
    msg = str(info.value)
    assert msg.startswith(f"{churn_path}: ")
    assert "booster takes 5 feature(s)" in msg and "feeds it 6" in msg and "'noise'" in msg
    # the value model's own booster (same features, its own objective)
    same = json.loads((folder / f"{LTV}.model.json").read_text())
    doc["state"]["booster"] = same["state"]["boosters"]["value_model_"]
    churn_path.write_text(json.dumps(doc))
    rehash(folder, CHURN)
    with pytest.raises(ModelStateError, match=rf"{CHURN}\.model\.json: .*objective 'tweedie', "
                       "not 'binary'"):
        load_exported_models(folder, CHURN, LTV)
    # the whole value model file in the churn model's place
    (folder / f"{CHURN}.model.json").write_text((folder / f"{LTV}.model.json").read_text())
    rehash(folder, CHURN)
    with pytest.raises(ModelMismatchError, match=rf"{CHURN}\.model\.json: holds a LTVModel, "
                       "not a churn classifier"):
        load_exported_models(folder, CHURN, LTV)


def test_a_model_card_without_lineage_is_refused_unless_allowed(tmp_path, export_parts,
                                                                model_data) -> None:
    """Issue 19: removing the cards' tags turned the lineage check into two raw warnings."""
    folder = tmp_path / "models"
    write_card(folder, CHURN, export_parts["churn"], tags={})
    write_card(folder, LTV, export_parts["ltv"], tags={})
    expected = lineage(scoring_config())
    with pytest.raises(ModelMismatchError, match=rf"{CHURN} v1 \({folder}\) records no "
                       "lineage.*scoring.allow_missing_lineage: true"):
        load_exported_models(folder, CHURN, LTV, expected=expected)
    with pytest.warns(DataWarning, match="records no lineage"):
        models = load_exported_models(folder, CHURN, LTV, expected=expected,
                                      allow_missing_lineage=True)
    assert models.churn.predict_proba(model_data.X_test).shape == (len(model_data.X_test), 2)


# ----------------------------------------------------------------------------- Spark


def test_transactions_only_folder_gives_the_same_features_on_spark_and_duckdb(
        spark, tmp_path) -> None:
    """Issue 19: a transactions-only folder failed on Spark with `The greatest requires > 1
    parameters` (tenure_days over a single first-seen feature)."""
    from churnml.features import build_features

    rng = np.random.default_rng(3)
    n = 120
    pd.DataFrame({
        "customer_id": rng.choice([f"k{i}" for i in range(25)], n),
        "ts": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 400, n), unit="D"),
        "amount": rng.uniform(-5, 80, n).round(2),
    }).to_csv(tmp_path / "transactions.csv", index=False)
    data = load_folder(tmp_path)
    cutoffs = pd.DatetimeIndex(["2023-09-01", "2024-01-15"])
    duck = build_features(data, cutoffs)
    on_spark = build_features(data, cutoffs, engine="spark", spark=spark)
    assert "tenure_days" in duck
    pd.testing.assert_frame_equal(on_spark, duck, rtol=1e-9)
    first = data.transactions.groupby("customer_id")["ts"].min()
    row = duck[duck["cutoff"] == cutoffs[1]].set_index("customer_id")
    expected = (cutoffs[1] - first[row.index]) / pd.Timedelta(days=1)
    np.testing.assert_allclose(row["tenure_days"], expected, rtol=1e-12)
