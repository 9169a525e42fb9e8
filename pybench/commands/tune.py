"""A sweep with `search = "grid" | "random" | "tpe"`: each framework tuned on the same budget, then
its best configuration scored on fresh seeds.

The protocol is MLCommons AlgoPerf's external tuning, per model:

1. Trials. Every framework has an Optuna study of its own (`pybench.tuning`) with the same
   search space and the same number of trials (`trials`), optionally a time budget
   (`time_budget`: no trial starts once a framework's trials have spent it). A trial is one run on
   `seed` (default 0), on a validation split (the source's, else `val_fraction`, else 10% of the
   training split, the same images for every framework and trial), scored by its best epoch's
   validation score. Trials run in slots, every framework's slot k side by side, so a slow phase of
   the machine falls on all of them. A pruner may stop a trial after an epoch.
2. Selection. Each framework's best trial on validation; the test split never selects.
3. Verdict. Each best configuration is trained again on `final_seeds` (fresh seeds: never the
   trials' seed), and the headline compares those runs as `compare --seeds` does, paired by seed.

Every run is a sweep run (`pybench.commands.sweep`): a worker process, its files named by its
run id, its record in results.json as soon as it finishes. The document's `tuning` holds the
search and, per model and framework, what its study did and chose.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from pybench import tuning
from pybench.config import PATIENCE_VAL_FRACTION
from pybench.errors import Interrupted, PybenchError
from pybench.models import cnn_records
from pybench.results import write_results
from pybench.run.checks import preflight
from pybench.run.life import (
    as_interrupted,
    cache_entry_of,
    dataset_summary,
    describe_data,
    make_out_dir,
    results_header,
    write_unreadable,
)
from pybench.run.sweep_runs import (
    RunContext,
    SweepRun,
    check_forward,
    execute_run,
    grid_keys,
    open_tracker,
    previous_document,
    shared_config,
    with_identity,
)
from pybench.sweep_file import grid_points, option_values, run_dataset_options, run_train_config
from pybench.sweep_spec import SweepSpec


def tuned_dataset_options(spec: SweepSpec) -> dict:
    """The dataset options with a validation split asked for: trials are chosen on it."""
    options = run_dataset_options(spec)
    if options.get("val_fraction") is None:
        options["val_fraction"] = PATIENCE_VAL_FRACTION
    return options


def run_search(spec: SweepSpec, executor, out: Path, resume: bool = False, command: str | None = None,
               progress: bool = True) -> tuple[Path, dict]:
    """Tune every framework on every model of `spec`, then give the verdict runs; return the
    folder and the results document."""
    options = tuned_dataset_options(spec)
    space = spec.searched()
    first = SweepRun(spec.frameworks[0], spec.models[0],
                     run_train_config(spec, spec.models[0], option_values(spec, first_values(space))))
    checked = preflight(model_names=spec.models, frameworks=spec.frameworks, dataset=spec.dataset,
                        dataset_options=options, train=first.train, seed=first.train.seed,
                        device=None, progress=progress,
                        batch_size=max(space["batch_size"].values) if "batch_size" in space else None)
    dataset = checked.dataset
    if dataset.val is None:
        raise PybenchError(f"{spec.path}: {spec.dataset} has no validation split to choose the trials "
                           "on; give val_fraction = 0.1")
    out_dir = Path(out)
    previous = previous_document(out_dir, resume, dataset.fingerprint)
    records = {r["run_id"]: r for r in (previous or {}).get("runs", [])
               if isinstance(r, dict) and r.get("status") == "ok" and "run_id" in r}
    with executor:
        device = executor.resolve_device(spec.device)
        make_out_dir(out_dir)
        write_unreadable(out_dir, dataset)
        document = {**results_header(command),
                    "config": shared_config(spec, [first], device, executor.name, options),
                    "tuning": tuning_summary(spec, space),
                    "cnn_models": cnn_records(spec.models),
                    "dataset": dataset_summary(dataset), "runs": list(records.values())}
        describe_data(document, progress)
        write_results(out_dir, document)
        search = Search(spec, space, executor, out_dir, document, records,
                        RunContext(spec.dataset, options, device, spec.timeout, cache_entry_of(dataset)),
                        checked.unavailable, progress, open_tracker(spec.mlflow, out_dir))
        for model in spec.models:
            search.tune(model)
    return out_dir, document


def first_values(space: dict) -> dict:
    """Values of the first configuration (the pre-run checks' settings): each key's first choice
    or low end."""
    return {k: d.values[0] for k, d in space.items()}


def tuning_summary(spec: SweepSpec, space: dict) -> dict:
    """What the document says of the search before any trial ran."""
    return {"search": spec.search, "trials": spec.trials, "sampler_seed": spec.sampler_seed,
            "pruner": spec.pruner, "time_budget_s": spec.time_budget_s,
            "final_seeds": list(spec.final_seeds), "seed": spec.fixed.get("seed", 0),
            "space": {k: d.describe() for k, d in space.items()},
            "selection": "the best epoch's validation score (the test split never selects)",
            "same_configurations": spec.search != "tpe", "models": {}}


class Search:
    """One search's state while it runs: the records, the studies and the budget spent."""

    def __init__(self, spec: SweepSpec, space: dict, executor, out_dir: Path, document: dict,
                 records: dict, context: RunContext, unavailable: dict, progress: bool, tracker):
        self.spec, self.space, self.executor, self.out_dir = spec, space, executor, out_dir
        self.document, self.records, self.context = document, records, context
        self.unavailable, self.progress, self.tracker = unavailable, progress, tracker
        self.distributions = {k: tuning.optuna_distribution(d) for k, d in space.items()}
        self.points = grid_points(spec, grid_keys(spec)) if spec.search == "grid" else None
        self.execute = functools.partial(execute_run, context)

    # ------------------------------------------------------------ trials

    def tune(self, model: str) -> None:
        frameworks = [f for f in self.spec.frameworks if f not in self.unavailable]
        for framework in self.spec.frameworks:
            if framework in self.unavailable:
                self.keep({"framework": framework, "model": model, "status": "unavailable",
                           "run_id": f"{framework}-{model}-unavailable", "phase": "trial",
                           "reason": self.unavailable[framework]})
        studies = {f: tuning.open_study(self.out_dir, f"{model}:{f}", self.spec.pruner, self.spec.trials)
                   for f in frameworks}
        for study in studies.values():
            tuning.forget_unfinished(study)
        from tqdm import tqdm

        bar = tqdm(total=self.spec.trials * len(frameworks), desc=f"tune {model}", unit="trial",
                   file=sys.stderr, disable=not self.progress or None, dynamic_ncols=True)
        bar.update(sum(len(tuning.done_slots(s)) for s in studies.values()))
        try:
            while wave := self.next_wave(model, studies):
                self.run_wave(wave, studies, bar)
        finally:
            bar.close()
        self.summarise(model, studies)
        self.final_runs(model, studies)

    def spent_s(self, framework: str, model: str) -> float:
        return sum(r.get("wall_s") or 0.0 for r in self.records.values()
                   if r.get("phase") == "trial" and r["framework"] == framework and r["model"] == model)

    def budget_left(self, framework: str, model: str) -> bool:
        budget = self.spec.time_budget_s
        return budget is None or self.spent_s(framework, model) < budget

    def wave_size(self) -> int:
        """Slots run at once per framework: one at a time here; on Ray, every slot of a random or
        grid search at once (its values do not depend on earlier results), two of TPE."""
        if self.spec.parallel_trials:
            return self.spec.parallel_trials
        if self.executor.name != "ray":
            return 1
        return 2 if self.spec.search == "tpe" else self.spec.trials

    def next_wave(self, model: str, studies: dict) -> list[tuple[SweepRun, object]]:
        """The next slots of every framework with budget left, slot by slot across frameworks."""
        wave, taken = [], {f: tuning.done_slots(s) for f, s in studies.items()}
        for _ in range(self.wave_size()):
            for framework, study in studies.items():
                free = [k for k in range(self.spec.trials) if k not in taken[framework]]
                if not free or not self.budget_left(framework, model):
                    continue
                slot = free[0]
                taken[framework].add(slot)
                trial = tuning.ask(study, self.spec.search, self.distributions, self.spec.sampler_seed,
                                   slot, self.spec.trials,
                                   self.points[slot] if self.points is not None else None)
                prune = (tuning.snapshot(study, self.spec.pruner, self.spec.trials)
                         if self.spec.pruner != "none" else None)
                wave.append((self.trial_run(framework, model, slot, trial.params, prune), trial))
        return wave

    def trial_run(self, framework: str, model: str, slot: int, params: dict, prune: dict | None) -> SweepRun:
        train = run_train_config(self.spec, model, option_values(self.spec, params))
        return SweepRun(framework, model, train, swept=tuple(params.items()), tag=f"t{slot}", prune=prune)

    def run_wave(self, wave: list, studies: dict, bar) -> None:
        trials = {run.run_id: trial for run, trial in wave}
        runs = [run for run, _ in wave]
        finished = set()
        try:
            for run, record in self.executor.run(runs, self.execute, self.out_dir, cpus=self.spec.cpus_per_run,
                                                 gpu=self.context.device == "cuda"):
                state = tuning.tell(studies[run.framework], trials[run.run_id], record)
                self.keep({**with_identity(record, run), "phase": "trial", "trial": int(run.tag[1:]),
                           "trial_state": state, "objective": tuning.objective(record)})
                finished.add(run.run_id)
                bar.set_postfix_str(f"{run.framework} trial {run.tag[1:]}: {state}", refresh=False)
                bar.update(1)
        except (KeyboardInterrupt, Interrupted) as exc:
            interrupted = as_interrupted(exc)
            for run in runs:
                if run.run_id not in finished:
                    record = {"status": "interrupted", "reason": f"{interrupted} during training"}
                    tuning.tell(studies[run.framework], trials[run.run_id], record)
                    self.keep({**with_identity(record, run), "phase": "trial", "trial": int(run.tag[1:])},
                              log=False)
            raise interrupted from None

    def keep(self, record: dict, log: bool = True) -> None:
        """Store a record (results.json rewritten; MLflow told)."""
        self.records[record["run_id"]] = record
        if log and self.tracker is not None and record.get("status") != "unavailable":
            self.tracker.log_run(record, self.out_dir)
        self.document["runs"] = list(self.records.values())
        check_forward([r for r in self.document["runs"] if r.get("status") == "ok"], self.out_dir)
        write_results(self.out_dir, self.document)

    # ------------------------------------------------------------ selection and verdict

    def summarise(self, model: str, studies: dict) -> None:
        """Per framework: trials run, pruned, failed, time spent, why it stopped, the best."""
        summary = {}
        for framework, study in studies.items():
            trials = [r for r in self.records.values() if r.get("phase") == "trial"
                      and r["framework"] == framework and r["model"] == model and "trial" in r]
            states = [r.get("trial_state") for r in trials]
            best = best_trial(trials)
            summary[framework] = {
                "trials_run": len(trials), "pruned": states.count("pruned"),
                "failed": states.count("failed") + states.count("diverged"),
                "spent_s": self.spent_s(framework, model),
                "stopped_by": ("time_budget" if not self.budget_left(framework, model)
                               and len(trials) < self.spec.trials else "trials"),
                "best_trial": best["trial"] if best else None,
                "best_val": best["objective"] if best else None,
                "best_config": dict(best_values(best, self.space)) if best else None,
                "study": study.study_name}
        self.document["tuning"]["models"][model] = summary
        write_results(self.out_dir, self.document)

    def final_runs(self, model: str, studies: dict) -> None:
        """Each framework's best configuration again on every final seed (seed by seed across
        frameworks, as compare pairs them); finals of a configuration no longer best are
        dropped."""
        chosen = self.document["tuning"]["models"][model]
        runs = []
        for seed in self.spec.final_seeds:
            for framework, summary in chosen.items():
                if summary["best_config"] is None:
                    continue
                values = {**option_values(self.spec, summary["best_config"]), "seed": seed}
                train = run_train_config(self.spec, model, values)
                runs.append(SweepRun(framework, model, train, swept=tuple(summary["best_config"].items()),
                                     tag=f"final-t{summary['best_trial']}"))
        wanted = {run.run_id for run in runs}
        for run_id in [k for k, r in self.records.items() if r.get("phase") == "final"
                       and r["model"] == model and k not in wanted]:
            del self.records[run_id]
        todo = [run for run in runs if run.run_id not in self.records]
        trials = {f: s["best_trial"] for f, s in chosen.items()}
        try:
            for run, record in self.executor.run(todo, self.execute, self.out_dir, cpus=self.spec.cpus_per_run,
                                                 gpu=self.context.device == "cuda"):
                self.keep({**with_identity(record, run), "phase": "final", "trial": trials[run.framework]})
        except (KeyboardInterrupt, Interrupted) as exc:
            raise as_interrupted(exc) from None


def best_trial(trials: list[dict]) -> dict | None:
    """The trial with the highest validation objective; the earlier slot breaks a tie (pruned,
    failed and diverged trials never win)."""
    scored = [t for t in trials if t.get("trial_state") == "complete" and t.get("objective") is not None]
    return max(scored, key=lambda t: (t["objective"], -t["trial"]), default=None)


def best_values(record: dict, space: dict) -> list[tuple[str, object]]:
    """The searched values of a trial, from its record's config."""
    return [(k, record["config"][k]) for k in space]
