"""Puts the source root on sys.path, so that an entry point in scripts/ imports the shared code as
packages (tests.harness, tests.nightly), as meson's PYTHONPATH does for the tests. An entry point
imports it first: `from bootstrap import ROOT` (scripts/ is on the path as the script's own folder)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
