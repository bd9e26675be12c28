"""Salesforce External Client App (ECA) OAuth credential API simulator. See docs/simulator.md."""

from .core import ENDPOINTS, FAULT_KINDS, VARIANTS, Simulator
from .seed import SeedError, generate, load_seed

__all__ = ["Simulator", "generate", "load_seed", "SeedError", "VARIANTS", "FAULT_KINDS", "ENDPOINTS"]
