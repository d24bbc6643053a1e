"""MLflow tracking for training and evaluation runs.

Runs go to ``MLFLOW_TRACKING_URI`` when it is set (a tracking server), and otherwise to an
SQLite store at ``$SAHAY_HOME/mlflow.db`` with artifacts under ``$SAHAY_HOME/mlruns``
(MLflow's plain-file store is deprecated).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sahay.config import Settings

EXPERIMENTS = {"train": "sahay-train", "evaluate": "sahay-evaluate"}


def tracking_uri(settings: Settings) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.home_dir / 'mlflow.db'}"


def _mlflow(settings: Settings) -> Any:
    import mlflow

    # MLflow and Alembic announce every schema migration at INFO; keep the CLI's output readable.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    user_choice = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri(settings))
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; keep the variable meaning "the user chose a server".
    if user_choice is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    from sahay.store.db import MIGRATIONS_LOCK

    # The first call opens the tracking store, which migrates its database with Alembic: never at
    # the same moment as one of Sahay's own migrations in another thread (see MIGRATIONS_LOCK).
    with MIGRATIONS_LOCK:
        mlflow.MlflowClient().search_experiments(max_results=1)
    return mlflow


def _metric_key(key: str) -> str:
    """MLflow accepts letters, digits, '_', '-', '.', ' ' and '/' in metric names; labels may hold more."""
    return re.sub(r"[^\w\-. /]", "_", key)


@dataclass
class Tracker:
    """The active run; every call logs to it."""

    run_id: str
    _mlflow: Any

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        clean = {_metric_key(key): float(value) for key, value in metrics.items() if value is not None}
        if clean:
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_artifacts(self, path: Path, folder: str | None = None) -> None:
        self._mlflow.log_artifacts(str(path), artifact_path=folder)


@contextmanager
def tracked_run(kind: str, name: str, params: Mapping[str, object], settings: Settings) -> Iterator[Tracker]:
    """Start an MLflow run in the ``sahay-<kind>`` experiment and log ``params``."""
    mlflow = _mlflow(settings)
    experiment_name = EXPERIMENTS[kind]
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        # A server keeps its own artifact store; a local database keeps them beside itself, never in the cwd.
        local = tracking_uri(settings).startswith(("sqlite:", "file:"))
        artifacts = (settings.home_dir / "mlruns").as_uri() if local else None
        experiment_id = mlflow.create_experiment(experiment_name, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
        yield Tracker(run_id=run.info.run_id, _mlflow=mlflow)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    kind: str
    name: str
    status: str
    started: datetime
    metrics: dict[str, float]


def list_runs(settings: Settings, limit: int = 20) -> list[RunSummary]:
    """The newest runs of both experiments, newest first."""
    mlflow = _mlflow(settings)
    found = {kind: mlflow.get_experiment_by_name(name) for kind, name in EXPERIMENTS.items()}
    experiments = {kind: exp for kind, exp in found.items() if exp is not None}
    if not experiments:
        return []
    kinds = {exp.experiment_id: kind for kind, exp in experiments.items()}
    runs = mlflow.search_runs(
        experiment_ids=list(kinds),
        max_results=limit,
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    return [
        RunSummary(
            run_id=run.info.run_id,
            kind=kinds[run.info.experiment_id],
            name=run.info.run_name or "",
            status=run.info.status,
            started=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
            metrics=dict(run.data.metrics),
        )
        for run in runs
    ]
