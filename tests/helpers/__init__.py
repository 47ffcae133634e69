"""Test-only helpers: reference computations, small set-ups, shared by several folders."""
