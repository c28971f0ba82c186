"""The nightly boot matrix's probe, checks, verdicts and reports (scripts/nightly-boot)."""
