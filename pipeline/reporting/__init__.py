"""What the asset pages show: plots as PNG bytes and numbers as a reader wants them.

Presentation only: nothing here computes a figure a decision depends on, and nothing imports
Dagster, so the same plots serve the CLI's reports and a notebook.
"""
