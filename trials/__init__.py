"""Reliability trials: faults injected by the hundred against the real components, each
script printing its figures and exiting non-zero when anything was lost (see README.md)."""
