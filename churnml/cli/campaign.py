"""`churnml campaign plan|evaluate|train|target`: the campaign loop (churnml.uplift.workflow)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from churnml.cli._common import (
    ConfigOpt,
    DataDirOpt,
    DatasetOpt,
    OutFormat,
    app,
    check_output_file,
    emit,
    err,
    fail,
    load,
    parse_iso_timestamp,
    resolve_config,
    step,
)
from churnml.errors import ChurnmlError, DataWarning
from churnml.paths import portable

campaign_app = typer.Typer(
    help="Campaigns and uplift: plan with control groups, evaluate, train, target.",
    no_args_is_help=True,
)
app.add_typer(campaign_app, name="campaign")

CampaignOpt = Annotated[str, typer.Option("--campaign", help="campaign id")]
TrackingOpt = Annotated[
    str | None, typer.Option("--tracking-uri", help="MLflow store (default: tracking.uri)")
]
SHOWN = ["arm", "segment", "n_treated", "n_control", "retention_treated", "retention_control",
         "retention_lift", "retention_lift_low", "retention_lift_high", "revenue_lift",
         "incremental_revenue", "cost", "net_revenue", "net_revenue_low", "net_revenue_high",
         "qini"]


def _read_scores(path: Path) -> pd.DataFrame:
    from churnml.report.inputs import read_output

    if not path.exists():
        raise FileNotFoundError(f"scores not found: {path} (run `churnml score` first, or "
                                "`churnml campaign target` for targeting values)")
    return read_output(path)


def _default_scores(cfg) -> Path:
    from churnml.uplift.workflow import TARGETING_FILE

    out = Path(cfg.output_dir)
    return out / TARGETING_FILE if (out / TARGETING_FILE).exists() else out / "scores.parquet"


@campaign_app.command("plan")
def plan_cmd(
    campaign: CampaignOpt,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    segments: Annotated[
        str | None, typer.Option("--segments", help="comma-separated segments to include "
                                 "(default: all)")] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="scored customers (default: "
                                  "<output_dir>/targeting.parquet if present, else "
                                  "scores.parquet)")] = None,
    control_share: Annotated[
        float | None, typer.Option("--control-share", help="holdout share per segment "
                                   "(default: uplift.control_share)")] = None,
    contact_date: Annotated[
        str | None, typer.Option("--contact-date", help="contact time recorded in the log, "
                                 "ISO 8601 (default: the scores' cutoff)")] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="append the campaign log to this campaigns "
                                  "table (e.g. data/campaigns.csv)")] = None,
) -> None:
    """Select customers of the segments, hold out a seeded random control group in each
    segment, write the contact lists (treated only) and the campaign log (both arms)."""
    from churnml.uplift.workflow import plan

    try:
        cfg = resolve_config(config, dataset, data)
        check_output_file(log)
        if control_share is not None:
            cfg.uplift.control_share = control_share
        contact_ts = (None if contact_date is None else
                      parse_iso_timestamp(contact_date, "--contact-date", cfg.data.timezone))
        frame = _read_scores(scores or _default_scores(cfg))
        names = [s.strip() for s in segments.split(",") if s.strip()] if segments else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # printed below from the plan
            result, files = plan(cfg, frame, campaign, segments=names, contact_ts=contact_ts,
                                 log_path=log)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    for note in result.notes:
        err.print(f"  {note}")
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    emit(result.summary(), OutFormat.table, None, f"Campaign {campaign}: customers per arm")
    err.print(f"[green]✓[/green] wrote {portable(files['contacts'].parent)} (contacts.csv, "
              f"campaign_log.csv, to_contact/)" + (f"; appended to {files['log']}"
                                                   if "log" in files else ""))


@campaign_app.command("evaluate")
def evaluate_cmd(
    campaign: CampaignOpt,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    tracking_uri: TrackingOpt = None,
    fmt: Annotated[OutFormat, typer.Option("--format", help="table | csv | json")] = (
        OutFormat.table),
) -> None:
    """Treatment vs control of a campaign whose horizon has passed: retention and revenue lift
    with confidence intervals, incremental revenue minus cost, Qini of the targeting score;
    per segment and overall. Written to campaigns/<id>/evaluation.csv and logged to MLflow."""
    from churnml.uplift.workflow import evaluate

    try:
        cfg = resolve_config(config, dataset, data)
        if tracking_uri is not None:
            cfg.tracking.uri = tracking_uri
        customer_data = load(cfg)
        with step(f"evaluating campaign {campaign}"):
            ev = evaluate(cfg, customer_data, campaign)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    level = int(round(cfg.uplift.interval_level * 100))
    emit(ev.table[[c for c in SHOWN if c in ev.table]], fmt, None,
         f"Campaign {campaign}: treatment vs control over {cfg.churn.horizon_days} days "
         f"({level} % intervals; revenue in {customer_data.currency})")
    err.print(f"[green]✓[/green] wrote {portable(ev.files['evaluation'])}; MLflow run {ev.run_id}")


@campaign_app.command("train")
def train_cmd(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Fit the uplift model (uplift.learner on uplift.outcome) on the campaign log's matured
    contacts; prints its held-out Qini with bootstrap intervals; saves uplift/model.json and
    logs to MLflow."""
    from churnml.uplift.workflow import train_uplift

    try:
        cfg = resolve_config(config, dataset, data)
        if tracking_uri is not None:
            cfg.tracking.uri = tracking_uri
        customer_data = load(cfg)
        with step(f"fitting the {cfg.uplift.learner}-learner on {cfg.uplift.outcome}"):
            fit = train_uplift(cfg, customer_data)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    emit(fit.validation, OutFormat.table, None,
         f"Held-out uplift metrics ({fit.n_contacts:,} contacts of {', '.join(fit.campaigns)}; "
         "scikit-uplift normalisation)")
    err.print(f"[green]✓[/green] wrote {portable(fit.files['model'])}; MLflow run {fit.run_id}")


@campaign_app.command("target")
def target_cmd(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data: DataDirOpt = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="scores of `churnml score` (default: "
                                  "<output_dir>/scores.parquet)")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="default: <output_dir>/targeting.parquet")
    ] = None,
) -> None:
    """Add uplift, targeting_value (= uplift x value_if_retained - cost) and negative_uplift to
    the scores; without an uplift model, falls back to value at risk and says so."""
    from churnml.io import write_table
    from churnml.uplift.workflow import TARGETING_FILE, load_uplift, target

    try:
        cfg = resolve_config(config, dataset, data)
        target_path = out or Path(cfg.output_dir) / TARGETING_FILE
        check_output_file(target_path)
        frame = _read_scores(scores or Path(cfg.output_dir) / "scores.parquet")
        fit = load_uplift(cfg)
        customer_data = load(cfg)
        with step("targeting by incremental value" if fit else "targeting (fallback)"):
            result = target(cfg, customer_data, frame, fit)
        path = write_table(result, target_path)
    except (ChurnmlError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    if fit is None:
        err.print("[yellow]warning:[/yellow] no uplift model (churnml campaign train): "
                  "targeting_value = value_at_risk")
    n_neg = int(result["negative_uplift"].sum())
    err.print(f"{len(result):,} customers; {n_neg:,} with negative uplift (never targeted); "
              f"wrote {portable(path)}")
