"""`churnml train` (backtest, fit, MLflow log and register) and `churnml export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from churnml.cli._common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    _cell,
    app,
    err,
    fail,
    load,
    resolve_config,
)
from churnml.errors import ChurnmlError
from churnml.paths import portable, relative

TrackingOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow store (default: tracking.uri of the config)"),
]
LABELS = {"roc_auc": "AUC", "pr_auc": "PR AUC", "brier": "Brier", "log_loss": "log loss",
          "top_decile_lift": "lift@10%", "normalized_gini": "Gini", "top_10_capture": "top 10%",
          "top_20_capture": "top 20%", "spearman": "Spearman", "total_ratio": "pred/actual"}
TITLES = {"churn": "Churn: model vs baselines (backtest mean over folds)",
          "ltv": "LTV over the horizon: model vs last-value baseline (backtest mean)",
          "if_retained": "Revenue of customers who did not churn: value if retained vs "
                         "expected value and trailing revenue (backtest mean)",
          "value_at_risk": "Revenue lost to churn (churned x revenue of the horizon before "
                           "the cutoff): rankings (backtest mean)"}


def _print_table(df: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for c in df.columns:
        table.add_column(LABELS.get(c, c), justify="left" if c == "model" else "right")
    for row in df.itertuples(index=False):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else _cell(v) for v in row])
    Console().print(table)


def _mlflow_ui(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {relative(uri)}"


@app.command()
def train(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    tracking_uri: TrackingOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="where outputs go")] = None,
) -> None:
    """Backtest the churn and LTV models against naive baselines, fit them on all labelled
    cutoffs, log the run to MLflow and register both models (alias challenger; champion if
    better on the configured backtest metric)."""
    from churnml.training.train import candidate_costs, summary_tables
    from churnml.training.train import train as run_training

    try:
        cfg = resolve_config(config, dataset, data)
        if tracking_uri is not None:
            cfg.tracking.uri = tracking_uri
        if out_dir is not None:
            cfg.output_dir = str(out_dir)
        if cfg.features.engine == "spark":  # the panel is built where the tables live
            from churnml.pipeline import spark_job

            with spark_job(cfg) as (_, spark_data):
                result = run_training(cfg, spark_data, console=err)
        else:
            result = run_training(cfg, load(cfg), console=err)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    for task, table in summary_tables(result.summary).items():
        _print_table(table, TITLES[task])
    selection = pd.concat([result.backtest.selection, result.models.selection],
                          ignore_index=True)
    for row in candidate_costs(selection).itertuples():
        err.print(f"  {row.task} candidate {row.params}: chosen {row.chosen} of "
                  f"{row.selections} selections, {row.seconds:.1f} s of inner fits",
                  soft_wrap=True, markup=False, highlight=False)
    for reg in result.registrations.values():
        champion = "none" if reg.champion_version is None else f"v{reg.champion_version}"
        verdict = ("promoted to champion" if reg.promoted
                   else f"registered as challenger, champion stays {champion}")
        err.print(f"  {reg.name} v{reg.version} aliases={reg.aliases}: {verdict} "
                  f"({reg.metric})", soft_wrap=True)
        err.print(f"    {reg.message}", soft_wrap=True, markup=False)
    if result.registrations and not next(iter(result.registrations.values())).promoted:
        err.print("  churn and LTV models are promoted together: both must beat their "
                  "champion and their naive baseline", soft_wrap=True)
    for what, path in result.files.items():
        err.print(f"  {what:<22} {portable(path)}")
    err.print(f"  total {sum(result.seconds.values()):.1f} s; MLflow run {result.run_id}")
    err.print(f"  browse runs: {_mlflow_ui(cfg.tracking.uri)}", soft_wrap=True)


@app.command()
def export(
    alias: Annotated[str, typer.Option(help="registry alias to export")] = "champion",
    out: Annotated[Path, typer.Option("--out", help="folder for the model files and cards")]
    = Path("models"),
    config: ConfigOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write the churn/LTV pair holding ALIAS as code-free JSON (LightGBM text models, no
    pickle) plus JSON model cards, for scoring without an MLflow server. The store is only
    read: a missing store or model is an error naming it."""
    from mlflow.exceptions import MlflowException

    from churnml.training.export import MODEL_SUFFIX, export_models

    try:
        cfg = resolve_config(config, None, None)
        uri = tracking_uri or cfg.tracking.uri
        names = (cfg.tracking.churn_model_name, cfg.tracking.ltv_model_name)
        cards = export_models(alias, out, tracking_uri=uri, names=names)
    except (ChurnmlError, LookupError, MlflowException, FileNotFoundError) as exc:
        fail(exc)
    for name, card in cards.items():
        err.print(f"[green]✓[/green] {name}@{alias} -> {card.parent / (name + MODEL_SUFFIX)}, "
                  f"{card}", soft_wrap=True)
