"""The project's Python test code as a package: `tests.harness` (what every test and script shares)
and `tests.nightly` (the nightly boot matrix). Importable with the source root on the path: meson sets
PYTHONPATH for the integration tests, scripts/ entry points import scripts/bootstrap.py first."""
