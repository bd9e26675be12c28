"""Fixtures of the safety suites; the helpers live in safety_helpers.py (a conftest module name is shared by
several suites, so tests import the helpers under their own name)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Fixtures, imported so that pytest finds them.
from safety_helpers import loop_servers, sandbox  # noqa: E402,F401 pylint: disable=unused-import
