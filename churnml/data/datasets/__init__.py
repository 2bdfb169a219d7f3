"""Example datasets: the real CDNOW log and the seeded simulator."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from churnml.data.customer_data import CustomerData

DATASETS = ("cdnow", "simulated")
CDNOW_FILE = "cdnow_master.txt.gz"


def load_cdnow(merge_same_day: bool = True) -> CustomerData:
    """The CDNOW purchase log (1997-01-01..1998-06-30, 23,570 customers); see README.md here.

    With ``merge_same_day`` the lines of one customer-day become one transaction (amount and
    quantity summed), the convention of Fader, Hardie & Lee (2005).
    """
    with resources.files(__package__).joinpath(CDNOW_FILE).open("rb") as fh:
        raw = pd.read_csv(
            fh, sep=r"\s+", compression="gzip",
            dtype={"customer_id": "int64", "date": "str", "number_of_cds": "float64",
                   "dollar_value": "float64"},
        )
    tx = pd.DataFrame({
        "customer_id": raw["customer_id"],
        "ts": pd.to_datetime(raw["date"], format="%Y%m%d"),
        "amount": raw["dollar_value"],
        "quantity": raw["number_of_cds"],
    })
    if merge_same_day:
        tx = tx.groupby(["customer_id", "ts"], as_index=False, sort=True)[
            ["amount", "quantity"]
        ].sum()
    tx["order_id"] = tx.index.astype("int64") + 1
    customers = tx.groupby("customer_id", as_index=False)["ts"].min().rename(
        columns={"ts": "signup_ts"}
    )
    return CustomerData.from_frames(tx, customers=customers, name="cdnow", currency="USD")


def load_dataset(name: str, *, n_customers: int = 20_000, seed: int = 42) -> CustomerData:
    """Load a built-in dataset by name: ``cdnow`` or ``simulated`` (the simulator with the two
    randomised demo campaigns of :data:`~churnml.data.simulate_campaigns.DEMO_CAMPAIGNS`)."""
    if name == "cdnow":
        return load_cdnow()
    if name == "simulated":
        from churnml.data.simulate import SimulatorConfig, simulate
        from churnml.data.simulate_campaigns import DEMO_CAMPAIGNS

        return simulate(n_customers, seed=seed,
                        config=SimulatorConfig(campaigns=list(DEMO_CAMPAIGNS)))
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
