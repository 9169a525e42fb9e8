"""Optuna, as a search uses it: distributions, samplers, pruners and the study file.

pybench asks Optuna for each trial's values (`ask`) and tells it the result (`tell`); where a trial
runs stays pybench's (`pybench.run.executors`). Three rules keep a comparison fair:

- Equal budget, paired: every framework has a study of its own with the same space and the same
  number of trials. A trial's values are drawn by a sampler seeded from the search's seed and
  the trial's slot (0, 1, 2, ...), not from a sampler's running state, so random search hands
  every framework the same configuration in the same slot, in any order and after a resume.
  TPE learns from each framework's own results, so its configurations may diverge (said).
- Pruning is decided in the worker, after each epoch's validation score, by Optuna's pruner
  over a snapshot of the study's finished trials taken when the trial started: the same rule
  whether the trial runs here or as a Ray task on another node, with no channel back.
- The study lives beside the results (`STUDY_FILE`, Optuna's journal file storage), so a rerun
  with --resume continues it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

STUDY_FILE = "study.journal"


def optuna():
    import optuna as module

    module.logging.set_verbosity(module.logging.WARNING)  # its INFO lines would fill stderr
    warnings.filterwarnings("ignore", category=module.exceptions.ExperimentalWarning)
    return module


def optuna_distribution(distribution):
    """Optuna's distribution for a `pybench.sweep_spec.Distribution`."""
    d = optuna().distributions
    low_high = distribution.values[:2]
    if distribution.kind == "log_uniform":
        return d.FloatDistribution(*low_high, log=True)
    if distribution.kind == "uniform":
        return d.FloatDistribution(*low_high)
    if distribution.kind == "int":
        return d.IntDistribution(*low_high)
    return d.CategoricalDistribution(distribution.values)


def slot_seed(sampler_seed: int, slot: int) -> int:
    """The seed of the sampler that draws a slot's values (the same for every framework)."""
    return (sampler_seed * 1_000_003 + slot) % 2**32


def tpe_startup_trials(trials: int) -> int:
    """TPE's random trials before it models the results: a third of the budget, 2 to 10
    (Optuna's default of 10 would leave a budget of 8 all random)."""
    return min(10, max(2, trials // 3))


def sampler(search: str, sampler_seed: int, slot: int, trials: int):
    """The sampler for one slot: random and grid draw from the slot's seed alone (grid slots are
    enqueued, see `ask`); TPE models the study's finished trials."""
    samplers = optuna().samplers
    seed = slot_seed(sampler_seed, slot)
    if search == "tpe":
        return samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(trials))
    return samplers.RandomSampler(seed=seed)


def pruner(name: str, trials: int):
    """Optuna's pruner: "median" (MedianPruner: stop a trial whose epoch's validation score is
    below the median of the finished trials' at that epoch, after 2 finished trials) or "asha"
    (SuccessiveHalvingPruner, rungs at epochs 1, 3, 9, ...); "none": every trial runs out."""
    pruners = optuna().pruners
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=min(2, max(1, trials - 1)), n_warmup_steps=0)
    if name == "asha":
        return pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return pruners.NopPruner()


def open_study(folder: Path, name: str, pruner_name: str, trials: int):
    """The study `name` in the folder's journal file, created or continued."""
    o = optuna()
    storage = o.storages.JournalStorage(o.storages.journal.JournalFileBackend(str(Path(folder) / STUDY_FILE)))
    return o.create_study(study_name=name, storage=storage, direction="maximize",
                          pruner=pruner(pruner_name, trials), load_if_exists=True)


def ask(study, search: str, distributions: dict, sampler_seed: int, slot: int, trials: int,
        grid_point: dict | None = None):
    """A new trial of `study` in `slot`: its values drawn for that slot (a grid's point
    enqueued)."""
    study.sampler = sampler(search, sampler_seed, slot, trials)
    if grid_point is not None:
        study.enqueue_trial(grid_point)
    trial = study.ask(distributions)
    trial.set_user_attr("slot", slot)
    return trial


def forget_unfinished(study) -> None:
    """Trials a stopped search left running: failed, and not counted (their slots run again)."""
    states = optuna().trial.TrialState
    for trial in study.get_trials(deepcopy=False, states=(states.RUNNING, states.WAITING)):
        study._storage.set_trial_user_attr(trial._trial_id, "counted", False)
        study.tell(trial.number, state=states.FAIL, skip_if_finished=True)


def done_slots(study) -> set[int]:
    """Slots whose trial finished (completed, pruned, or failed as a result)."""
    states = optuna().trial.TrialState
    done = set()
    for trial in study.get_trials(deepcopy=False):
        if trial.state == states.RUNNING or trial.user_attrs.get("counted") is False:
            continue
        done.add(trial.user_attrs.get("slot", trial.number))
    return done


def tell(study, trial, record: dict) -> str:
    """Tell `study` a trial's record: its validation score per epoch, then its objective (the best
    epoch's validation score) or its state. Returns the state's name."""
    o = optuna()
    states = o.trial.TrialState
    if record.get("status") == "interrupted":
        trial.set_user_attr("counted", False)
        study.tell(trial, state=states.FAIL)
        return "interrupted"
    for epoch, value in enumerate(record.get("epoch_val_accuracy") or [], start=1):
        trial.report(value, epoch)
        trial.should_prune()  # ASHA keeps its rungs in the trial: the parent's study needs them too
    if record.get("status") == "diverged":  # a result: the values were too bold
        trial.set_user_attr("diverged", True)
        study.tell(trial, 0.0)
        return "diverged"
    if record.get("status") != "ok" or not record.get("epoch_val_accuracy"):
        study.tell(trial, state=states.FAIL)
        return "failed"
    if record.get("pruned_at_epoch") is not None:
        study.tell(trial, state=states.PRUNED)
        return "pruned"
    study.tell(trial, objective(record))
    return "complete"


def objective(record: dict) -> float | None:
    """A trial's score: its best epoch's validation score (the epoch whose weights it keeps)."""
    values = record.get("epoch_val_accuracy") or []
    return max(values) if values else None


def snapshot(study, name: str, trials: int) -> dict:
    """What a worker's pruner needs: the pruner and the finished trials' epoch scores."""
    states = optuna().trial.TrialState
    finished = study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))
    return {"pruner": name, "trials": trials,
            "history": [{"state": t.state.name, "value": t.value,
                         "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
                         "system_attrs": {k: v for k, v in t.system_attrs.items()
                                          if k.startswith("completed_rung_")}}
                        for t in finished]}


class EpochPruner:
    """In the worker: after each epoch, whether the search's pruner stops this trial. It
    replays the snapshot into an in-memory study and asks Optuna's own pruner."""

    def __init__(self, spec: dict):
        o = optuna()
        self.study = o.create_study(direction="maximize", pruner=pruner(spec["pruner"], spec["trials"]),
                                    storage=o.storages.InMemoryStorage())
        states = o.trial.TrialState
        self.study.add_trials([
            o.trial.create_trial(state=states[h["state"]],
                                 value=h["value"] if h["state"] == "COMPLETE" else None,
                                 intermediate_values={int(k): v for k, v in h["intermediate"].items()},
                                 system_attrs=h.get("system_attrs") or {})
            for h in spec["history"]])
        self.trial = self.study.ask()
        self.pruned_at: int | None = None

    def __call__(self, epoch: int, value: float) -> bool:
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False
