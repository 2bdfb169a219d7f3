"""churnml: retention metrics, leakage-safe churn/LTV features, models and scoring."""

from churnml.data.customer_data import CustomerData
from churnml.errors import DataValidationError

__all__ = ["CustomerData", "DataValidationError"]
__version__ = "0.1.0"
