"""Registry and exports that cannot be confused or abused, on a real SQLite MLflow store:
no pickles run from a models folder, champions move as a pair and only past their baselines,
models trained for another setup are refused, missing stores are not created, concurrent
runs on a new store do not race, and config paths resolve against the config's folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from ceilings import HANG_CEILING_S
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, DataConfig, ScoringConfig, TrackingConfig, load_config
from churnml.errors import (
    ConfigError,
    ModelMismatchError,
    ModelSourceError,
    UntrustedModelError,
)
from churnml.models import ChurnClassifier, LTVModel
from churnml.pipeline import load_scoring_models
from churnml.scoring import score_features
from churnml.training import tracking as tr
from churnml.training.champion import VERDICT_TAG, decide_pair, promote_pair
from churnml.training.export import export_models, load_exported
from churnml.training.lineage import lineage_tags

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")

FAST = {"n_estimators": 30, "n_jobs": 1}
CHURN, LTV = "shop-churn", "shop-ltv"
METRICS = {"churn": "roc_auc", "ltv": "normalized_gini"}
runner = CliRunner()


@pytest.fixture
def store(migrated_db, tmp_path) -> str:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(migrated_db, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="module")
def pair_models(model_data) -> list[tuple[ChurnClassifier, LTVModel]]:
    """Two different fitted pairs (different seeds and tree counts)."""
    X = model_data.X_train
    return [
        (ChurnClassifier(seed=seed, **FAST).fit(X, model_data.churn_train),
         LTVModel(seed=seed, **FAST).fit(X, model_data.ltv_train))
        for seed in (1, 2)
    ]


def config(name: str = "shop", uri: str = "sqlite:///mlflow.db", **data) -> Config:
    return Config(name=name, data=DataConfig(**(data or {"dataset": "simulated"})),
                  tracking=TrackingConfig(uri=uri, churn_model_name=CHURN, ltv_model_name=LTV))


def summary(churn: float, recency: float, ltv: float, last_value: float,
            churn_metric: str = "roc_auc", ltv_metric: str = "normalized_gini") -> pd.DataFrame:
    """A hand-built backtest summary table (``task, model, metric, mean``)."""
    return pd.DataFrame(
        [("churn", "churn", churn_metric, churn), ("churn", "recency", churn_metric, recency),
         ("churn", "logistic", churn_metric, 0.99),  # not a baseline of the rule
         ("ltv", "ltv", ltv_metric, ltv), ("ltv", "last_value", ltv_metric, last_value)],
        columns=["task", "model", "metric", "mean"],
    )


def log_pair(store: str, models, X: pd.DataFrame, table: pd.DataFrame,
             cfg: Config | None = None) -> dict[str, tuple[str, str]]:
    """Log and register a churn/LTV pair in one run, as `train` does, with the backtest
    means of ``table`` as ``backtest.<model>.<metric>`` metrics; returns the candidates."""
    tags = lineage_tags(cfg or config(uri=store))
    with tr.start_run("shop", tracking_uri=store, tags=tags) as run:
        tr.log_metrics({f"{r.model}.{r.metric}": r.mean for r in table.itertuples()},
                       prefix="backtest.")
        churn = tr.log_model(models[0], X, output=tr.CHURN_OUTPUT, registered_model_name=CHURN)
        ltv = tr.log_model(models[1], X, output=tr.LTV_OUTPUT, registered_model_name=LTV)
    return {"churn": (CHURN, churn.version), "ltv": (LTV, ltv.version), "run": run.info.run_id}


def promote(store: str, candidates, table: pd.DataFrame):
    pair = {k: v for k, v in candidates.items() if k != "run"}
    return promote_pair(table, METRICS, pair, store, run_id=candidates["run"], min_delta=1e-6)


def champions(store: str) -> tuple[str, str]:
    with tr.tracking(store) as client:
        return tuple(str(client.get_registered_model(n).aliases.get(tr.CHAMPION))
                     for n in (CHURN, LTV))


# ----------------------------------------------------------------------- champion rule


def test_model_worse_than_its_baseline_is_not_promoted():
    """Issue 10: backtest ROC AUC 0.876 vs recency 0.887 was promoted; 0.200 vs 0.714 too."""
    pair = {"churn": ("c", "3"), "ltv": ("l", "3")}
    d = decide_pair(summary(0.876, 0.887, 0.60, 0.50), METRICS, pair,
                    {"churn": ("2", 0.870), "ltv": ("2", 0.55)}, min_delta=1e-6)
    churn, ltv = d.verdicts["churn"], d.verdicts["ltv"]
    assert churn.beats_champion and not churn.beats_baseline and not churn.qualifies
    assert ltv.qualifies and not d.promote
    assert "c v3: roc_auc 0.8760 vs recency 0.8870, champion v2 0.8700" in churn.text
    assert churn.text.endswith("does not beat the recency baseline")
    assert d.message.startswith("registered as challenger (pair not promoted: c did not")
    first = decide_pair(summary(0.200, 0.714, 0.60, 0.50), METRICS, pair)  # no champion yet
    assert not first.promote and first.verdicts["churn"].champion_version is None


def test_pair_is_promoted_only_when_both_beat_champion_and_baseline():
    pair = {"churn": ("c", "3"), "ltv": ("l", "3")}
    champs = {"churn": ("2", 0.80), "ltv": ("2", 0.55)}
    assert decide_pair(summary(0.85, 0.75, 0.60, 0.50), METRICS, pair, champs).promote
    # LTV beats its last-value baseline but not the champion: neither model moves
    d = decide_pair(summary(0.85, 0.75, 0.54, 0.50), METRICS, pair, champs)
    assert not d.promote and d.verdicts["churn"].qualifies
    assert d.verdicts["ltv"].text.endswith("does not beat champion v2")
    # LTV loses to last value
    assert not decide_pair(summary(0.85, 0.75, 0.49, 0.50), METRICS, pair).promote
    # a tie within the margin is no improvement
    tie = decide_pair(summary(0.80 + 5e-7, 0.75, 0.60, 0.50), METRICS, pair, champs, 1e-6)
    assert not tie.verdicts["churn"].beats_champion
    # a champion without the metric is replaced; a missing baseline value blocks promotion
    assert decide_pair(summary(0.85, 0.75, 0.6, 0.5), METRICS, pair,
                       {"churn": ("2", None), "ltv": ("2", 0.55)}).promote
    no_baseline = decide_pair(summary(0.85, np.nan, 0.6, 0.5), METRICS, pair)
    assert not no_baseline.promote
    assert "recency baseline has no backtest roc_auc" in no_baseline.verdicts["churn"].text


def test_lower_is_better_metrics():
    metrics = {"churn": "brier", "ltv": "mae"}
    pair = {"churn": ("c", "3"), "ltv": ("l", "3")}
    champs = {"churn": ("2", 0.19), "ltv": ("2", 40.0)}
    ok = summary(0.18, 0.21, 35.0, 50.0, "brier", "mae")
    d = decide_pair(ok, metrics, pair, champs)
    assert d.promote and "lower is better" in d.verdicts["churn"].text
    worse = decide_pair(summary(0.20, 0.21, 35.0, 50.0, "brier", "mae"), metrics, pair, champs)
    assert not worse.promote and worse.verdicts["churn"].beats_baseline
    assert not worse.verdicts["churn"].beats_champion
    loses = decide_pair(summary(0.18, 0.21, 55.0, 50.0, "brier", "mae"), metrics, pair, champs)
    assert not loses.verdicts["ltv"].beats_baseline


def test_promotion_in_a_store_tags_the_verdicts(store, pair_models, model_data):
    X = model_data.X_train
    first = log_pair(store, pair_models[0], X, summary(0.80, 0.70, 0.60, 0.50))
    assert promote(store, first, summary(0.80, 0.70, 0.60, 0.50)).promote
    assert champions(store) == ("1", "1")
    # better than the champion, worse than recency: challenger, numbers in the tags
    table = summary(0.85, 0.86, 0.70, 0.50)
    second = log_pair(store, pair_models[1], X, table)
    decision = promote(store, second, table)
    assert not decision.promote and champions(store) == ("1", "1")
    with tr.tracking(store) as client:
        run_tags = client.get_run(second["run"]).data.tags
        version = client.get_model_version(CHURN, "2")
        ltv_version = client.get_model_version(LTV, "2")
    assert run_tags[VERDICT_TAG] == "challenger"
    assert "roc_auc 0.8500 vs recency 0.8600, champion v1 0.8000" in run_tags[
        f"{VERDICT_TAG}.churn"]
    assert version.tags[VERDICT_TAG] == run_tags[f"{VERDICT_TAG}.churn"]
    assert version.aliases == [tr.CHALLENGER] and ltv_version.aliases == [tr.CHALLENGER]


def folds(churn: list[float], recency: list[float], ltv: list[float],
          last_value: list[float], churn_metric: str = "roc_auc",
          ltv_metric: str = "normalized_gini") -> pd.DataFrame:
    """A hand-built per-fold metrics table (``model, fold, <metric>``) as the backtest
    writes it, one metric per task."""
    rows = []
    for model, metric, values in (("churn", churn_metric, churn),
                                  ("recency", churn_metric, recency),
                                  ("ltv", ltv_metric, ltv), ("last_value", ltv_metric,
                                                             last_value)):
        rows += [{"model": model, "fold": f, metric: v} for f, v in enumerate(values)]
    return pd.DataFrame(rows)


def means(table: pd.DataFrame, churn_metric: str = "roc_auc",
          ltv_metric: str = "normalized_gini") -> pd.DataFrame:
    m = table.groupby("model")[[churn_metric, ltv_metric]].mean()
    return summary(m.loc["churn", churn_metric], m.loc["recency", churn_metric],
                   m.loc["ltv", ltv_metric], m.loc["last_value", ltv_metric],
                   churn_metric, ltv_metric)


# A grocery-like backtest: churn loses to recency on the means (0.8765 vs 0.8875) but wins
# one fold of four; paired differences +0.03 -0.05 -0.01 -0.014: mean -0.011, sd 0.032721.
GROCERY = folds([0.90, 0.85, 0.88, 0.876], [0.87, 0.90, 0.89, 0.89],
                [0.60, 0.62, 0.58, 0.61], [0.50, 0.52, 0.49, 0.50])


def test_paired_rule_promotes_a_model_within_noise_of_its_baseline():
    pair = {"churn": ("c", "3"), "ltv": ("l", "3")}
    strict = decide_pair(means(GROCERY), METRICS, pair, rule="strict", folds=GROCERY)
    assert not strict.promote and not strict.verdicts["churn"].beats_baseline
    paired = decide_pair(means(GROCERY), METRICS, pair, rule="paired", folds=GROCERY)
    churn = paired.verdicts["churn"]
    assert paired.promote and churn.paired.folds == 4
    assert churn.paired.mean == pytest.approx(-0.011)
    diffs = np.array([0.03, -0.05, -0.01, -0.014])
    assert churn.paired.sd == pytest.approx(np.std(diffs, ddof=1))
    assert ("paired over 4 folds: mean difference -0.0110, sd 0.0327, tolerance 1 sd): "
            "within the folds' noise of the recency baseline") in churn.text
    # a tolerance of 0.3 sd: -0.0110 < -0.0098 blocks it
    tight = decide_pair(means(GROCERY), METRICS, pair, rule="paired", folds=GROCERY,
                        tolerance_sd=0.3)
    assert not tight.promote
    assert tight.verdicts["churn"].text.endswith(
        "worse than the recency baseline by more than the folds' spread")


def test_paired_rule_blocks_a_model_worse_in_every_fold():
    pair = {"churn": ("c", "3"), "ltv": ("l", "3")}
    worse = folds([0.85, 0.86, 0.84, 0.87], [0.87, 0.885, 0.858, 0.892],  # -0.02 .. -0.025
                  [0.60, 0.62, 0.58, 0.61], [0.50, 0.52, 0.49, 0.50])
    d = decide_pair(means(worse), METRICS, pair, rule="paired", folds=worse)
    assert not d.verdicts["churn"].beats_baseline and not d.promote
    # losses: lower is better, so the paired difference is baseline - model
    brier = folds([0.20, 0.21, 0.19, 0.22], [0.19, 0.20, 0.18, 0.21],  # 0.01 worse each fold
                  [30.0, 31.0, 29.0, 30.0], [40.0, 41.0, 42.0, 39.0], "brier", "mae")
    d = decide_pair(means(brier, "brier", "mae"), {"churn": "brier", "ltv": "mae"}, pair,
                    rule="paired", folds=brier)
    assert d.verdicts["churn"].paired.mean == pytest.approx(-0.01)
    assert not d.verdicts["churn"].beats_baseline and d.verdicts["ltv"].beats_baseline
    # one fold: no spread to judge by, the strict rule applies
    one = GROCERY[GROCERY["fold"] == 1]
    d = decide_pair(means(one), METRICS, pair, rule="paired", folds=one)
    assert d.verdicts["churn"].paired is None and not d.promote
    with pytest.raises(ValueError, match="promotion rule 'loose'"):
        decide_pair(means(GROCERY), METRICS, pair, rule="loose")


def test_no_champion_says_why_and_how_to_score(store, pair_models, model_data):
    """The grocery case under the strict rule: the pair stays challenger; loading the
    champion names the verdicts with their numbers and the command that scores anyway."""
    table = means(GROCERY)
    candidates = log_pair(store, pair_models[0], model_data.X_train, table)
    pair = {k: v for k, v in candidates.items() if k != "run"}
    decision = promote_pair(table, METRICS, pair, store, run_id=candidates["run"],
                            rule="strict", folds=GROCERY)
    assert not decision.promote
    with pytest.raises(ModelSourceError) as caught:
        load_scoring_models(config(uri=store))
    text = str(caught.value)
    assert f"'{CHURN}' in MLflow store {store} has no version with alias 'champion'" in text
    assert (f"no {CHURN}/{LTV} pair has become 'champion': the latest pair ({CHURN} v1, run "
            f"{candidates['run']}) stayed challenger") in text
    assert "roc_auc 0.8765 vs recency 0.8875" in text
    assert "does not beat the recency baseline" in text
    assert "To score with it anyway: `churnml score --alias challenger`" in text
    assert "retrain with tracking.promotion_rule: paired" in text
    cfg = config(uri=store)
    cfg.scoring.model_alias = tr.CHALLENGER
    models = load_scoring_models(cfg)
    assert models.version == f"{CHURN} v1, {LTV} v1"
    # under the paired rule the same backtest makes the pair champion
    again = promote_pair(table, METRICS, pair, store, run_id=candidates["run"],
                         rule="paired", folds=GROCERY)
    assert again.promote and champions(store) == ("1", "1")


# ----------------------------------------------------------------------- pairs


def test_interrupted_promotion_leaves_the_previous_pair(store, pair_models, model_data,
                                                        monkeypatch):
    X, Xt = model_data.X_train, model_data.X_test
    table = summary(0.80, 0.70, 0.60, 0.50)
    first = log_pair(store, pair_models[0], X, table)
    promote(store, first, table)
    better = summary(0.90, 0.70, 0.70, 0.50)
    second = log_pair(store, pair_models[1], X, better)

    real = tr._set_alias

    def killed(client, name, alias, version):
        if name == CHURN:  # the process dies after the LTV alias, before the churn alias
            raise KeyboardInterrupt("killed between the two alias writes")
        real(client, name, alias, version)

    monkeypatch.setattr(tr, "_set_alias", killed)
    with pytest.raises(KeyboardInterrupt):
        promote(store, second, better)
    monkeypatch.setattr(tr, "_set_alias", real)
    assert champions(store) == ("1", "2")  # the LTV alias moved, the churn alias did not
    pair = tr.resolve_pair(CHURN, LTV, tr.CHAMPION, store)
    assert (str(pair.churn.version), str(pair.ltv.version)) == ("1", "1")
    assert "interrupted promotion" in pair.note
    with pytest.warns(UserWarning, match="interrupted promotion"):
        models = load_scoring_models(config(uri=store))
    assert models.version == f"{CHURN} v1, {LTV} v1"
    churn1, ltv1 = pair_models[0]
    assert np.array_equal(models.ltv.predict(Xt), ltv1.predict(Xt))
    features = Xt.astype({"n_tickets": "float64"}).assign(
        customer_id=[f"c{i}" for i in range(len(Xt))], cutoff=pd.Timestamp("2024-10-01"))
    no_reasons = ScoringConfig(segments=[], default_segment={"name": "all", "action": "none",
                                                             "reasons": False})
    scores = score_features(features, models, no_reasons, scored_at="2024-10-02").scores
    assert len(scores) == len(Xt) and scores["model_version"].iloc[0] == models.version
    np.testing.assert_array_equal(
        scores.set_index("customer_id").loc[features["customer_id"], "churn_probability"],
        churn1.predict_proba(Xt)[:, 1])
    # the next promotion completes the move
    assert promote(store, second, better).promote
    assert champions(store) == ("2", "2")
    pair = tr.resolve_pair(CHURN, LTV, tr.CHAMPION, store)
    assert (str(pair.churn.version), str(pair.ltv.version), pair.note) == ("2", "2", None)


def test_exported_models_must_be_a_pair(store, pair_models, model_data, tmp_path):
    X = model_data.X_train
    first = log_pair(store, pair_models[0], X, summary(0.8, 0.7, 0.6, 0.5))
    promote(store, first, summary(0.8, 0.7, 0.6, 0.5))
    export_models(tr.CHAMPION, tmp_path / "a", store, names=(CHURN, LTV))
    second = log_pair(store, pair_models[1], X, summary(0.9, 0.7, 0.7, 0.5))
    promote(store, second, summary(0.9, 0.7, 0.7, 0.5))
    export_models(tr.CHAMPION, tmp_path / "b", store, names=(CHURN, LTV))
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "a", mixed)
    for f in (f"{LTV}.json", f"{LTV}.model.json"):
        shutil.copyfile(tmp_path / "b" / f, mixed / f)
    with pytest.raises(ModelMismatchError, match=f"{CHURN} v1 .* and {LTV} v2 .* were not "
                       "trained together"):
        load_scoring_models(config(uri=store), models_dir=mixed)
    models = load_scoring_models(config(uri=store), models_dir=tmp_path / "b")
    assert models.version == f"{CHURN} v2, {LTV} v2"


# ----------------------------------------------------------------------- lineage


def test_registry_names_default_from_the_config_name(tmp_path):
    assert Config(name="my-shop", data=DataConfig(dataset="cdnow")).tracking.churn_model_name \
        == "my-shop-churn"
    demo = load_config(Path(__file__).parents[1] / "configs" / "default.yaml")
    own = load_config(Path(__file__).parents[1] / "configs" / "examples" / "own-data.yaml")
    assert (demo.tracking.churn_model_name, demo.tracking.ltv_model_name) == (
        "simulated-churn", "simulated-ltv")
    assert (own.tracking.churn_model_name, own.tracking.ltv_model_name) == (
        "my-shop-churn", "my-shop-ltv")
    explicit = config()
    assert explicit.tracking.churn_model_name == CHURN
    path = tmp_path / "bad.yaml"
    path.write_text("name: a/b\ndata: {dataset: simulated}\n")
    with pytest.raises(ConfigError, match="name 'a/b' cannot name registered models"):
        load_config(path)


def test_champion_trained_for_another_setup_is_refused(store, pair_models, model_data,
                                                       tmp_path):
    """The demo and an own-data config sharing registry names: the other's champion is
    refused with both sides named, from the registry and from an export."""
    demo = config(name="demo", uri=store)
    table = summary(0.8, 0.7, 0.6, 0.5)
    promote(store, log_pair(store, pair_models[0], model_data.X_train, table, demo), table)
    assert load_scoring_models(demo).version == f"{CHURN} v1, {LTV} v1"
    own = config(name="my-shop", uri=store, dir=str(tmp_path / "exports"))
    with pytest.raises(ModelMismatchError) as err:
        load_scoring_models(own)
    msg = str(err.value)
    assert f"{CHURN} v1 ({store}) was trained for another setup" in msg
    assert "config: trained with 'demo', scoring with 'my-shop'" in msg
    assert "data source: trained with 'simulated (20000 customers, seed 42)" in msg
    assert "scoring with \"folder 'exports'" in msg
    # another churn definition (horizon) of the same config and data
    other_horizon = config(name="demo", uri=store)
    other_horizon.churn.horizon_days = 30
    with pytest.raises(ModelMismatchError, match="churn definition: trained with "
                       "'non_contractual, target purchase, 90-day horizon"):
        load_scoring_models(other_horizon)
    export_models(tr.CHAMPION, tmp_path / "models", store, names=(CHURN, LTV))
    with pytest.raises(ModelMismatchError, match="config: trained with 'demo'"):
        load_scoring_models(own, models_dir=tmp_path / "models")
    assert load_scoring_models(demo, models_dir=tmp_path / "models").version == \
        f"{CHURN} v1, {LTV} v1"


# ----------------------------------------------------------------------- pickles


def _crafted_pickle_folder(folder: Path, marker: Path) -> None:
    """A models folder whose churn 'model' is a pickle that runs a shell command, with a
    card whose hash matches (an attacker can write both)."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder.mkdir()
    path = folder / f"{CHURN}.joblib"
    joblib.dump(Payload(), path)
    card = {"name": CHURN, "version": "1", "run_id": "r", "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (folder / f"{CHURN}.json").write_text(json.dumps(card))


def test_crafted_pickle_is_not_loaded_without_trust(tmp_path):
    folder, marker = tmp_path / "models", tmp_path / "pwned"
    _crafted_pickle_folder(folder, marker)
    with pytest.raises(UntrustedModelError, match=rf"{CHURN}\.joblib is a pickle: loading it "
                       "can run any code.*--trust-pickle"):
        load_scoring_models(config(), models_dir=folder)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "name": "shop", "data": {"dataset": "simulated", "simulated_customers": 200},
        "tracking": {"churn_model_name": CHURN, "ltv_model_name": LTV},
        "scoring": {"models_dir": "models"}, "output_dir": "out"}))
    res = runner.invoke(app, ["score", "--config", str(cfg_file)])
    assert res.exit_code == 2 and "is a pickle" in res.output
    assert not marker.exists()
    # the explicit opt-in does load it (and so runs it), with a warning
    with pytest.warns(UserWarning, match="loading pickled model"):
        load_exported(folder, CHURN, trust_pickle=True)
    assert marker.exists()


def test_card_cannot_point_outside_its_folder(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / f"{CHURN}.json").write_text(json.dumps(
        {"file": "../elsewhere.model.json", "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="'file' must name a file in"):
        load_exported(folder, CHURN)


# ----------------------------------------------------------------------- stores


def test_logged_models_hold_no_pickle(store, pair_models, model_data, tmp_path):
    """The store holds the JSON state and churnml's entry-point file, and no pickle."""
    import mlflow

    log_pair(store, pair_models[0], model_data.X_train, summary(0.8, 0.7, 0.6, 0.5))
    with tr.tracking(store, read_only=True):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{CHURN}/1",
                                                         dst_path=str(tmp_path)))
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert {"estimator.json", "pyfunc_model.py", "MLmodel"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".joblib", ".pickle"))]
    loaded = tr.load_model(f"models:/{CHURN}/1", store)
    X = model_data.X_test
    assert np.array_equal(loaded.predict_proba(X), pair_models[0][0].predict_proba(X))


def test_registration_prints_nothing(store, pair_models, model_data, capfd):
    """MLflow's "Successfully registered model" / "Created version" lines stay out of
    routine runs."""
    candidates = log_pair(store, pair_models[0], model_data.X_train, summary(0.8, 0.7, 0.6, 0.5))
    log_pair(store, pair_models[1], model_data.X_train, summary(0.8, 0.7, 0.6, 0.5))
    err = capfd.readouterr().err
    assert "Successfully registered" not in err and "Created version" not in err
    with tr.tracking(store) as client:
        mv = client.get_model_version(CHURN, "2")
        assert client.get_registered_model(CHURN).aliases == {tr.CHALLENGER: 2}
    assert candidates["churn"] == (CHURN, "1") and mv.run_id != candidates["run"]
    assert mv.source.startswith("models:/m-")


def test_missing_store_is_not_created(tmp_path):
    missing = tmp_path / "typo" / "mlflow.db"
    uri = f"sqlite:///{missing}"
    with pytest.raises(ModelSourceError, match=f"MLflow store {uri} not found"):
        load_scoring_models(config(uri=uri))
    res = runner.invoke(app, ["export", "--tracking-uri", uri, "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "not found" in res.output
    assert not missing.exists() and not missing.parent.exists()
    assert not (tmp_path / "m").exists()


def test_missing_model_names_store_and_model(store, pair_models, model_data):
    with pytest.raises(ModelSourceError, match=rf"registered model '{CHURN}' not found in "
                       rf"MLflow store {store} \(registered there: none\)"):
        load_scoring_models(config(uri=store))
    size = Path(store.removeprefix("sqlite:///")).stat().st_size
    log_pair(store, pair_models[0], model_data.X_train, summary(0.8, 0.7, 0.6, 0.5))
    with pytest.raises(ModelSourceError, match=f"'{CHURN}' in MLflow store .* has no version "
                       "with alias 'champion'"):
        load_scoring_models(config(uri=store))
    other = config(uri=store)
    other.tracking.churn_model_name = "shop-chrun"
    with pytest.raises(ModelSourceError, match=r"'shop-chrun' not found .*registered there: "
                       rf"\['{LTV}', '{CHURN}'\]|'shop-chrun' not found .*registered there: "
                       rf"\['{CHURN}', '{LTV}'\]"):
        load_scoring_models(other)
    assert size > 0


RACE = """
import sys, time
from pathlib import Path
from churnml.training.tracking import log_metrics, start_run
uri, barrier, me = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(barrier / me).touch()  # imported and ready: start together
deadline = time.time() + 3600  # the other may import slowly on a busy machine
while len(list(barrier.iterdir())) < 2 and time.time() < deadline:
    time.sleep(0.001)
with start_run("race", tracking_uri=uri):
    log_metrics({"x": 1.0})
"""


@pytest.mark.slow  # two fresh interpreters and a store migration: tens of seconds
def test_two_runs_on_a_new_store_do_not_race(tmp_path):
    """Two processes start on the same new SQLite store at the same instant (old code: one
    crashed in the schema migration or the experiment creation)."""
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    script, barrier = tmp_path / "race.py", tmp_path / "barrier"
    script.write_text(RACE)
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), uri, str(barrier), str(i)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(2)]
    results = [p.communicate(timeout=HANG_CEILING_S) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    with tr.tracking(uri, read_only=True) as client:
        experiment = client.get_experiment_by_name("race")
        runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all(r.data.metrics == {"x": 1.0} for r in runs)


# ----------------------------------------------------------------------- config paths


def test_config_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("windows_days: [30]\n")
    path = folder / "shop.yaml"
    path.write_text(yaml.safe_dump({
        "name": "shop",
        "data": {"dir": "../data", "allowed_roots": [".."]},
        "features": {"spec": "spec.yaml"},
        "tracking": {"uri": "sqlite:///../store/mlflow.db"},
        "scoring": {"models_dir": "../models"},
        "output_dir": "../out",
    }))
    monkeypatch.chdir(tmp_path)  # elsewhere: the working folder must not matter
    cfg = load_config(Path("project/configs/shop.yaml"))
    root = (tmp_path / "project").resolve()
    assert cfg.data.dir == str(root / "data")
    assert cfg.features.spec == str(root / "configs" / "spec.yaml")
    assert cfg.tracking.uri == f"sqlite:///{root / 'store' / 'mlflow.db'}"
    assert cfg.scoring.models_dir == str(root / "models")
    assert cfg.output_dir == str(root / "out")
    # absolute paths, server URIs and unset keys (defaults) are left alone
    path.write_text(yaml.safe_dump({
        "data": {"dir": str(tmp_path / "abs"), "allowed_roots": [str(tmp_path)]},
        "tracking": {"uri": "http://mlflow:5000"}}))
    cfg = load_config(path)
    assert cfg.data.dir == str(tmp_path / "abs")
    assert cfg.tracking.uri == "http://mlflow:5000" and cfg.output_dir == "out"
    path.write_text(yaml.safe_dump({"data": {"dataset": "cdnow"},
                                    "tracking": {"uri": f"sqlite:///{tmp_path}/x.db"}}))
    assert load_config(path).tracking.uri == f"sqlite:///{tmp_path}/x.db"
