"""Checks of the survival grid (``survival:`` in the config) against the loaded data."""

from __future__ import annotations

from churnml.config import SurvivalConfig
from churnml.data.customer_data import CustomerData, data_end, data_start
from churnml.errors import ConfigError


def data_span_days(data: CustomerData) -> float:
    """Days from the earliest timestamp of any table to the end of the data
    (:func:`~churnml.data.customer_data.data_end`, exclusive): the longest follow-up any
    customer can have."""
    return (data_end(data) - data_start(data)).total_seconds() / 86_400


def check_survival_grid(survival: SurvivalConfig, data: CustomerData) -> None:
    """Refuse a grid longer than the data can support.

    A duration of ``grid_periods x period_days`` days can only be observed for a customer
    followed that long; beyond the data span no customer is, so the hazard of the last
    periods would be extrapolation dressed up as an estimate (the tail rule is the stated way
    to extend a curve). Raises :class:`~churnml.errors.ConfigError` naming the grid, the data
    span and its dates.
    """
    span = data_span_days(data)
    if survival.grid_days > span:
        start, end = data_start(data), data_end(data)
        longest = int(span // survival.period_days)
        raise ConfigError(
            f"survival.grid_periods: the grid of {survival.grid_periods} periods x "
            f"{survival.period_days} days = {survival.grid_days} days is longer than the data "
            f"span of {span:,.1f} days ({start} .. {end}, data {data.name!r}); at most "
            f"{longest} periods of {survival.period_days} days fit: shorten "
            "survival.grid_periods (curves are extended by survival.tail_rule)")
