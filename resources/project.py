"""The project's settings that assets read at run time, as a Dagster resource."""

from pathlib import Path

import dagster as dg

from pipeline.settings import DEFAULT_MAX_EPOCHS, DEFAULT_TRAIN_END, DEFAULT_VALIDATION_END


class ProjectResource(dg.ConfigurableResource):
    """Where reports go (`home`/reports) and the split and training defaults that a run's
    config may override. Filled in from the settings where the Definitions are built, so no
    asset reads the environment."""

    home: str = ".signals"
    train_end: str = DEFAULT_TRAIN_END
    validation_end: str = DEFAULT_VALIDATION_END
    max_epochs: int = DEFAULT_MAX_EPOCHS

    def report_dir(self, model_id: int, market: str) -> Path:
        return Path(self.home) / "reports" / f"model-{model_id}" / market
