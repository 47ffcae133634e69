"""The code location's settings, resolved once from the environment when the location loads.

Dagster reads partitions when the asset decorators run, before any `Definitions` exists, so
the settings they come from are resolved here, once, and nowhere else in the orchestration
layer: `pipeline/partitions.py` builds the partitions from this object and
`pipeline/definitions.py` builds the resources' configuration from it.
"""

from __future__ import annotations

from pipeline.settings import Settings

SETTINGS = Settings.from_env()
