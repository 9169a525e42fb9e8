"""MLflow: every run of `compare --mlflow DIR` and of a sweep (`mlflow = "DIR"`) logged where
`mlflow ui` shows the frameworks' runs side by side.

DIR holds an MLflow tracking database (`mlflow.db`, SQLite: MLflow 3 keeps new features off its
old file store) and the artifacts (`artifacts/`); `mlflow ui --backend-store-uri
sqlite:///DIR/mlflow.db` opens it. One experiment per results folder (a compare or a sweep); per
run: the parameters (its training configuration), the per-epoch figures as metrics stepped by
epoch, the headline figures, tags (framework, model, phase, trial, status) and its record as
results.json holds it, as an artifact. The parent logs each record when it arrives, so a Ray
cluster's runs are logged on the machine that runs the sweep. An optional extra
(`pip install -e '.[mlflow]'`).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from pybench.errors import PybenchError

INSTALL_MLFLOW = "--mlflow needs MLflow, which is not installed: pip install -e '.[mlflow]'"
DATABASE = "mlflow.db"
# Per-epoch lists of a record, logged as metrics stepped by epoch.
EPOCH_METRICS = {"epoch_accuracy": "test_accuracy", "epoch_val_accuracy": "val_accuracy",
                 "epoch_train_loss": "train_loss", "epoch_train_accuracy": "train_accuracy",
                 "epoch_test_loss": "test_loss", "epoch_val_loss": "val_loss", "epoch_s": "epoch_s"}
# One figure each.
RUN_METRICS = ("test_accuracy", "val_accuracy", "objective", "first_step_s", "images_per_s",
               "time_to_target_s", "wall_s", "peak_memory_bytes", "steps", "epochs_run")


def tracking_uri(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / DATABASE}"


def import_mlflow():
    try:
        import mlflow
    except ImportError:
        raise PybenchError(INSTALL_MLFLOW) from None
    # MLflow's and its database migrations' INFO lines would fill the terminal.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


class MlflowTracker:
    """Logs records into the experiment `experiment` under `folder`."""

    def __init__(self, folder: Path, experiment: str):
        mlflow = import_mlflow()
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PybenchError(f"--mlflow {folder}: cannot create the folder ({exc.strerror})") from None
        self.client = mlflow.tracking.MlflowClient(tracking_uri(self.folder))
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=(self.folder / "artifacts" / experiment).resolve().as_uri()))

    def log_run(self, record: dict, out_dir: Path | None = None, params: dict | None = None) -> str:
        """One MLflow run for one record (its parameters: `params`, else its `config`);
        returns its MLflow run id."""
        tags = {"framework": record.get("framework_name", record["framework"]),
                "model": record["model"], "status": record.get("status", ""),
                "phase": record.get("phase", "compare"), "pybench.run_id": record.get("run_id", ""),
                **({"trial": str(record["trial"])} if record.get("trial") is not None else {}),
                **({"seed": str(record["seed"])} if record.get("seed") is not None else {}),
                **({"results": str(Path(out_dir).resolve())} if out_dir else {})}
        run = self.client.create_run(self.experiment_id, run_name=record.get("run_id") or
                                     f"{tags['framework']}-{record['model']}", tags=tags)
        run_id = run.info.run_id
        for key, value in (params_of(params) if params is not None else params_of(record.get("config") or {})).items():
            self.client.log_param(run_id, key, value)
        for name, value in run_metrics(record).items():
            self.client.log_metric(run_id, name, value)
        for key, name in EPOCH_METRICS.items():
            for epoch, value in enumerate(record.get(key) or [], start=1):
                if is_finite(value):
                    self.client.log_metric(run_id, f"epoch/{name}", value, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "record.json"
            path.write_text(json.dumps(record, indent=1, default=str))
            self.client.log_artifact(run_id, str(path))
        status = "FINISHED" if record.get("status") == "ok" else "FAILED"
        self.client.set_terminated(run_id, status)
        return run_id


def is_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def params_of(config: dict, prefix: str = "") -> dict[str, str]:
    """A configuration as MLflow parameters: nested settings flattened (optimizer.lr), lists
    as JSON."""
    params = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update(params_of(value, f"{prefix}{key}."))
        else:
            params[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return params


def run_metrics(record: dict) -> dict[str, float]:
    """The headline figures of a record, and its median step time."""
    metrics = {k: record[k] for k in RUN_METRICS if is_finite(record.get(k))}
    median = (record.get("step_time_ms") or {}).get("median")
    if is_finite(median):
        metrics["step_time_ms_median"] = median
    return metrics
