"""The `survival:` config section and the check of its grid against the data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnml import CustomerData
from churnml.config import Config, SurvivalConfig, load_config
from churnml.data.survival_grid import check_survival_grid, data_span_days
from churnml.errors import ConfigError


def test_defaults() -> None:
    s = Config.model_validate({"data": {"dataset": "simulated"}}).survival
    assert (s.enabled, s.period_days, s.grid_periods, s.interval_level, s.tail_rule) == (
        False, 30, 24, 0.8, "constant_hazard")
    assert s.horizons_days == [30, 90, 365] and s.grid_days == 720
    assert s.discount_rate_annual == 0.10


def _load(tmp_path: Path, survival: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{dataset: simulated}}\nsurvival:\n{survival}")
    return load_config(path)


def test_yaml_section_is_read(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "  enabled: true\n  period_days: 7\n  grid_periods: 40\n"
                          "  horizons_days: [90, 28]\n  tail_rule: sbg\n")
    s = cfg.survival
    assert (s.enabled, s.period_days, s.grid_periods, s.tail_rule) == (True, 7, 40, "sbg")
    assert s.horizons_days == [28, 90]  # sorted


@pytest.mark.parametrize(("survival", "parts"), [
    ("  horizons_days: [30, 900]\n", ["survival: horizon 900 days lies beyond the grid",
                                      "24 x period_days 30 = 720 days"]),
    ("  horizons_days: []\n", ["survival.horizons_days", "at least one horizon"]),
    ("  horizons_days: [30, -5]\n", ["survival.horizons_days", "positive"]),
    ("  horizons_days: [30, 30]\n", ["survival.horizons_days", "repeat"]),
    ("  period_days: 0\n", ["survival.period_days"]),
    ("  interval_level: 1.2\n", ["survival.interval_level"]),
    ("  tail_rule: linear\n", ["survival.tail_rule"]),
    ("  grid: 3\n", ["survival.grid", "unknown key"]),
])
def test_bad_values_name_the_key(tmp_path: Path, survival: str, parts: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, survival)
    for part in parts:
        assert part in str(info.value)


def _data(first: str, last: str) -> CustomerData:
    tx = pd.DataFrame({"customer_id": [1, 2], "ts": [first, last], "amount": [1.0, 2.0]})
    return CustomerData.from_frames(tx)


def test_grid_longer_than_the_data_is_an_error_naming_the_span() -> None:
    data = _data("2024-01-01", "2024-12-30")  # end = 2024-12-31 00:00 -> 365 days
    assert data_span_days(data) == 365.0
    check_survival_grid(SurvivalConfig(period_days=30, grid_periods=12,
                                       horizons_days=[30]), data)  # 360 days fit
    check_survival_grid(SurvivalConfig(period_days=73, grid_periods=5,
                                       horizons_days=[30]), data)  # exactly 365 fit
    with pytest.raises(ConfigError) as info:
        check_survival_grid(SurvivalConfig(), data)  # 24 x 30 = 720 days
    msg = str(info.value)
    assert "survival.grid_periods" in msg and "720 days" in msg
    assert "data span of 365.0 days (2024-01-01 00:00:00 .. 2024-12-31 00:00:00" in msg
    assert "at most 12 periods of 30 days" in msg


def test_grid_span_counts_subscriptions_and_data_end() -> None:
    tx = pd.DataFrame({"customer_id": [1], "ts": ["2024-06-01"], "amount": [1.0]})
    subs = pd.DataFrame({"customer_id": [1], "start_ts": ["2023-01-01"], "end_ts": [None]})
    data = CustomerData.from_frames(tx, subscriptions=subs, end="2025-01-01")
    assert data_span_days(data) == 731.0
    check_survival_grid(SurvivalConfig(), data)


def test_default_config_grid_fits_the_simulated_data() -> None:
    from churnml.data.simulate import simulate

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert cfg.data.dataset == "simulated" and cfg.survival.grid_days == 720
    data = simulate(300, seed=cfg.data.seed)  # the built-in dataset's window, 2023-2024
    assert 720 < data_span_days(data) <= 731
    check_survival_grid(cfg.survival, data)


def test_train_refuses_a_grid_longer_than_the_data_and_writes_nothing(tmp_path: Path) -> None:
    from rich.console import Console

    from churnml.training.train import train

    tx = pd.DataFrame({"customer_id": [1, 2, 3], "ts": ["2024-01-01", "2024-03-01",
                                                        "2024-12-30"], "amount": [1.0] * 3})
    data = CustomerData.from_frames(tx)  # 365 days of data
    store, out = tmp_path / "store", tmp_path / "out"
    cfg = Config.model_validate({
        "data": {"dataset": "simulated"},
        "tracking": {"uri": f"sqlite:///{store / 'mlflow.db'}"},
        "survival": {"enabled": True, "period_days": 30, "grid_periods": 13},
        "output_dir": str(out)})
    with pytest.raises(ConfigError, match=r"survival\.grid_periods: the grid of 13 periods .* "
                       r"at most 12 periods of 30 days"):
        train(cfg, data, console=Console(quiet=True))
    assert not store.exists() and not out.exists()
