"""Local portal servers for tests (127.0.0.1 only); see base.LocalPortal."""

from .base import FAULT_ARITY, LocalPortal, json_error
from .dcat import HUB_FEED_PATH, DataJsonPortal
from .socrata import SocrataPortal
from .synth import make_data_json, make_socrata_entries

__all__ = [
    "FAULT_ARITY", "HUB_FEED_PATH", "DataJsonPortal", "LocalPortal", "SocrataPortal",
    "json_error", "make_data_json", "make_socrata_entries",
]
