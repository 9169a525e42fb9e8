"""Tuned sweeps (`search = "grid" | "random" | "tpe"`): every compare option is a sweep key, the
same budget and (for random search) the same configurations for every framework, selection on
validation, the verdict on fresh seeds, pruning in the worker, resuming a study, MLflow.

The fast tests use Optuna and MLflow directly with synthetic records; the slow ones run real
searches on `digits` in real workers, locally and on a real local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from legibility import collecting_figures

from pybench import tuning
from pybench.commands.tune import best_trial
from pybench.errors import PybenchError
from pybench.report import write_report
from pybench.sweep_file import (
    NOT_SWEEP_KEYS,
    compare_options,
    load_sweep_spec,
    option_kind,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text('dataset = "digits"\n' + text)
    return path


# ---------------------------------------------------------------- the file: one description

SAMPLE = {int: 1, float: 0.5, bool: True, str: "x"}
# Options whose value is checked beyond its type, and a valid value for each.
VALID = {"frameworks": ["torch"], "models": ["lenet5"], "augment": "flip", "milestones": "1",
         "trainable": "fc", "seeds": [0, 1], "normalize": "dataset",
         "pos_weight": "balanced", "test_fraction": 0.2, "val_fraction": 0.1}


def test_every_compare_option_is_a_sweep_key(tmp_path):
    """The option table is the one description: each of compare's options reads from a sweep file
    under its own name (underscores), with its own type."""
    options = compare_options()
    assert {"lr", "momentum", "nesterov", "schedule", "warmup_steps", "label_smoothing", "augment",
            "epochs", "eval_every", "throughput_block", "image_size", "mlflow"} <= set(options)
    for key, option in options.items():
        if key in VALID:
            value = VALID[key]
        elif option.choices is not None:
            value = list(option.choices)[0]
        else:
            value = SAMPLE[option_kind(option)]
        text = f"{key} = {json.dumps(value)}\n"
        spec = load_sweep_spec(write(tmp_path, text))
        stored = {**spec.fixed, **spec.grid, "frameworks": spec.frameworks, "models": spec.models}
        assert {"seeds": "seed"}.get(key, key) in stored, key
    assert not set(NOT_SWEEP_KEYS) & set(options)


def test_a_grid_over_any_option_gives_runs_with_those_settings(tmp_path):
    from pybench.commands.sweep import expand

    runs = expand(load_sweep_spec(write(tmp_path, 'frameworks = ["torch"]\nschedule = ["constant", '
                                                  '"cosine"]\nnesterov = true\nlabel_smoothing = 0.1\n'
                                                  'augment = ["", "flip"]\n')))
    assert len(runs) == 4 and len({r.run_id for r in runs}) == 4
    assert {(r.train.schedule.name, r.train.augment) for r in runs} == {
        ("constant", ()), ("constant", ("flip",)), ("cosine", ()), ("cosine", ("flip",))}
    assert all(r.train.optimizer.nesterov and r.train.optimizer.label_smoothing == 0.1 for r in runs)
    assert runs[0].config["schedule"] == "constant" and runs[1].config["augment"] == ["flip"]


BAD = {
    "closest key": ("warmup = 3\n", "warmup: unknown key (did you mean 'warmup_steps'?)"),
    "synonym": ("learning_rate = 0.1\n", "did you mean 'lr'?"),
    "not per run": ("repeats = 3\n", "repeats: not a sweep key"),
    "bad choice": ('schedule = "cosin"\n', "did you mean 'cosine'?"),
    "the option's own check": ("momentum = 1.5\n", "momentum: 1.5"),
    "distribution without search": ("lr = {log_uniform = [1e-3, 1e-1]}\n", "needs search"),
    "unknown distribution": ('search = "random"\ntrials = 2\nlr = {normal = [0, 1]}\n', "lr: a distribution"),
    "log of zero": ('search = "random"\ntrials = 2\nweight_decay = {log_uniform = [0, 0.1]}\n', "above 0"),
    "int for a float": ('search = "random"\ntrials = 2\nlr = {int = [1, 3]}\n', "use uniform"),
    "no trials": ('search = "random"\nlr = {uniform = [0.01, 0.1]}\n', "trials: missing"),
    "stale seed": ('search = "random"\ntrials = 2\nfinal_seeds = [0, 1]\nlr = [0.1, 0.2]\n',
                   "fresh seeds"),
    "searched data": ('search = "random"\ntrials = 2\nimage_size = {int = [8, 16]}\n',
                      "every run shares it"),
    "bad budget": ('search = "random"\ntrials = 2\nlr = [0.1, 0.2]\ntime_budget = "soon"\n', "duration"),
    "search keys without search": ("trials = 4\n", "needs search"),
    "a dataset option twice": ('split_seed = 1\n[dataset_options]\nseed = 2\n', "given at the top level too"),
    "a distribution in a grid": ('search = "grid"\nlr = {uniform = [0.1, 0.2]}\n', "a grid takes a list"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_search_file_is_one_line_naming_file_and_key(case, tmp_path):
    text, fragment = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(PybenchError) as error:
        load_sweep_spec(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_search_settings_and_defaults(tmp_path):
    spec = load_sweep_spec(write(tmp_path, 'search = "tpe"\ntrials = 8\nseed = 3\ntime_budget = "2h"\n'
                                           'lr = {log_uniform = [1e-4, 1e-1]}\nbatch_size = [32, 64]\n'))
    assert spec.final_seeds == (4, 5, 6, 7, 8)  # five fresh seeds after the trials' seed
    assert spec.pruner == "median" and spec.time_budget_s == 7200
    searched = spec.searched()
    assert searched["batch_size"].kind == "choice" and searched["lr"].kind == "log_uniform"
    grid = load_sweep_spec(write(tmp_path, 'search = "grid"\nlr = [0.1, 0.2]\nmomentum = [0.0, 0.9]\n'))
    assert grid.trials == 4 and grid.pruner == "none"


# ---------------------------------------------------------------- Optuna: equal budget, paired

def space():
    from pybench.sweep_spec import Distribution

    return {"lr": tuning.optuna_distribution(Distribution("log_uniform", (1e-4, 1e-1))),
            "momentum": tuning.optuna_distribution(Distribution("uniform", (0.0, 0.95))),
            "schedule": tuning.optuna_distribution(Distribution("choice", ("constant", "cosine")))}


def test_random_search_hands_every_framework_the_same_configuration_per_slot(tmp_path):
    torch_study = tuning.open_study(tmp_path, "lenet5:torch", "none", 6)
    jax_study = tuning.open_study(tmp_path, "lenet5:jax", "none", 6)
    # torch draws its six slots first; jax draws them in another order, between tells
    torch = {k: tuning.ask(torch_study, "random", space(), 7, k, 6).params for k in range(6)}
    jax = {}
    for k in (3, 0, 5, 1, 4, 2):
        trial = tuning.ask(jax_study, "random", space(), 7, k, 6)
        jax[k] = trial.params
        jax_study.tell(trial, 0.5)
    assert torch == jax
    assert len({json.dumps(p, sort_keys=True) for p in torch.values()}) == 6  # six different draws
    # another sampler seed, other draws
    other = tuning.open_study(tmp_path, "other", "none", 6)
    assert tuning.ask(other, "random", space(), 8, 0, 6).params != torch[0]


def test_a_stopped_study_forgets_its_unfinished_trials_and_runs_their_slots_again(tmp_path):
    study = tuning.open_study(tmp_path, "m:torch", "none", 3)
    first = tuning.ask(study, "random", space(), 0, 0, 3)
    study.tell(first, 0.9)
    tuning.ask(study, "random", space(), 0, 1, 3)  # running when the search stopped
    reopened = tuning.open_study(tmp_path, "m:torch", "none", 3)  # the journal file, read again
    tuning.forget_unfinished(reopened)
    assert tuning.done_slots(reopened) == {0}
    again = tuning.ask(reopened, "random", space(), 0, 1, 3)
    assert again.params == tuning.ask(tuning.open_study(tmp_path, "m:jax", "none", 3),
                                      "random", space(), 0, 1, 3).params


def history(*curves, pruned=()):
    return [{"state": "PRUNED" if i in pruned else "COMPLETE", "value": max(c),
             "intermediate": {str(e): v for e, v in enumerate(c, start=1)}} for i, c in enumerate(curves)]


def test_the_workers_median_pruner_stops_a_trial_below_the_finished_trials_median():
    snapshot = {"pruner": "median", "trials": 8, "history": history([0.80, 0.90, 0.95], [0.70, 0.85, 0.9])}
    poor = tuning.EpochPruner(snapshot)
    assert poor(1, 0.20) and poor.pruned_at == 1
    good = tuning.EpochPruner(snapshot)
    assert not good(1, 0.78) and not good(2, 0.90) and good.pruned_at is None
    alone = tuning.EpochPruner({"pruner": "median", "trials": 8, "history": history([0.9, 0.95])})
    assert not alone(1, 0.01)  # fewer finished trials than the pruner's start-up: never prunes
    none = tuning.EpochPruner({"pruner": "none", "trials": 8, "history": history([0.9], [0.9], [0.9])})
    assert not none(1, 0.0)


def test_tell_records_each_outcome_in_the_study(tmp_path):
    study = tuning.open_study(tmp_path, "m:torch", "median", 4)
    states = []
    for slot, record in enumerate([
            {"status": "ok", "epoch_val_accuracy": [0.5, 0.7, 0.6]},
            {"status": "ok", "epoch_val_accuracy": [0.2], "pruned_at_epoch": 1},
            {"status": "diverged", "epoch_val_accuracy": []},
            {"status": "failed"}]):
        states.append(tuning.tell(study, tuning.ask(study, "random", space(), 0, slot, 4), record))
    assert states == ["complete", "pruned", "diverged", "failed"]
    trials = study.get_trials()
    assert trials[0].value == 0.7 and trials[0].intermediate_values == {1: 0.5, 2: 0.7, 3: 0.6}
    assert trials[1].state.name == "PRUNED" and trials[2].value == 0.0
    assert tuning.done_slots(study) == {0, 1, 2, 3}  # every outcome spent its slot


def test_the_best_trial_is_chosen_on_validation_never_pruned_or_diverged():
    trials = [{"trial": 0, "trial_state": "complete", "objective": 0.90, "test_accuracy": 0.99},
              {"trial": 1, "trial_state": "complete", "objective": 0.95, "test_accuracy": 0.80},
              {"trial": 2, "trial_state": "pruned", "objective": 0.99},
              {"trial": 3, "trial_state": "complete", "objective": 0.95}]
    assert best_trial(trials)["trial"] == 1  # validation decides; the earlier slot breaks the tie


def tuned_document(accuracies: dict[str, list[float]], batch_sizes=None) -> dict:
    runs = []
    for framework, values in accuracies.items():
        for seed, accuracy in zip((1, 2, 3), values):
            runs.append({"framework": framework, "model": "lenet5", "status": "ok", "phase": "final",
                         "trial": 2, "test_accuracy": accuracy, "run_id": f"{framework}-{seed}",
                         "config": {"seed": seed, "lr": 0.05,
                                    "batch_size": (batch_sizes or {}).get(framework, 32)},
                         "step_times_ms": [5.0] * 20, "step_time_ms": {"median": 5.0, "n": 19}})
    studies = {f: {"best_trial": 2, "best_config": {"lr": 0.05}, "best_val": 0.9, "trials_run": 8,
                   "stopped_by": "trials"} for f in accuracies}
    return {"config": {"frameworks": list(accuracies)}, "runs": runs,
            "tuning": {"search": "random", "trials": 8, "final_seeds": [1, 2, 3], "same_configurations": True,
                       "space": {"lr": "log_uniform[0.001, 0.1]"}, "models": {"lenet5": studies}}}


def test_the_headline_gives_the_tuned_verdict_over_the_final_seeds():
    from pybench.report.headline import headline_lines

    [line] = headline_lines(tuned_document({"torch": [0.990, 0.991, 0.992], "jax": [0.989, 0.992, 0.991]}))
    assert line.startswith("- **lenet5** (tuned over 8 trials each (random search, the same "
                           "configurations in every framework; best on validation); verdict on the "
                           "fresh seeds 1, 2, 3)")
    assert "Chosen: torch trial 2 (lr=0.05); jax trial 2 (lr=0.05)." in line
    assert "Accuracy over 3 seeds" in line and "no difference resolved" in line
    [split] = headline_lines(tuned_document({"torch": [0.9] * 3, "jax": [0.9] * 3}, {"jax": 64}))
    assert "Step times not compared: the chosen batch sizes differ." in split


# ---------------------------------------------------------------- MLflow

def test_mlflow_logs_parameters_epochs_tags_and_the_record(tmp_path):
    from mlflow.tracking import MlflowClient

    from pybench.tracking import MlflowTracker, tracking_uri

    record = {"framework": "jax", "model": "lenet5", "status": "ok", "run_id": "jax-lenet5-t0-s0",
              "phase": "trial", "trial": 0, "config": {"lr": 0.05, "augment": ["flip"]},
              "test_accuracy": 0.97, "epoch_val_accuracy": [0.8, 0.9], "step_time_ms": {"median": 4.5}}
    tracker = MlflowTracker(tmp_path / "mlf", "sweep-x")
    run_id = tracker.log_run(record, tmp_path)
    client = MlflowClient(tracking_uri(tmp_path / "mlf"))
    [experiment] = [e for e in client.search_experiments() if e.name == "sweep-x"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.05", "augment": '["flip"]'}
    assert run.data.tags["framework"] == "jax" and run.data.tags["phase"] == "trial"
    assert run.data.metrics["test_accuracy"] == 0.97 and run.data.metrics["step_time_ms_median"] == 4.5
    epochs = client.get_metric_history(run_id, "epoch/val_accuracy")
    assert [(m.step, m.value) for m in epochs] == [(1, 0.8), (2, 0.9)]
    artifact = Path(client.download_artifacts(run_id, "record.json", str(tmp_path)))
    assert json.loads(artifact.read_text())["run_id"] == "jax-lenet5-t0-s0"


# ---------------------------------------------------------------- real searches on digits

TUNED = """\
frameworks = ["torch", "jax"]
search = "random"
trials = 3
final_seeds = 2
sampler_seed = 1
lr = {log_uniform = [0.003, 0.3]}
momentum = {uniform = [0.5, 0.95]}
schedule = ["constant", "cosine"]
epochs = 2
device = "cpu"
"""


def run_pybench(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYBENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "pybench", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=900)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def trial_configs(document: dict) -> dict[tuple, dict]:
    return {(r["framework"], r["trial"]): {k: r["config"][k] for k in ("lr", "momentum", "schedule")}
            for r in document["runs"] if r.get("phase") == "trial"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dataset-cache")


@pytest.fixture(scope="module")
def local_search(tmp_path_factory, cache):
    folder = tmp_path_factory.mktemp("tuned")
    path = write(folder, TUNED + 'mlflow = "mlf"\n')
    out = folder / "out"
    return out, run_pybench("sweep", path, "--out", out, cache=cache)


@pytest.mark.slow
def test_a_random_search_tunes_both_frameworks_alike_and_ends_with_the_tuned_verdict(local_search, tmp_path,
                                                                                   monkeypatch):
    out, result = local_search
    assert result.returncode == 0, result.stderr[-3000:]
    doc = results(out)
    configs = trial_configs(doc)
    assert len(configs) == 6
    for trial in range(3):  # the same three configurations, slot by slot
        assert configs[("torch", trial)] == configs[("jax", trial)]
    chosen = doc["tuning"]["models"]["lenet5"]
    for framework in ("torch", "jax"):
        trials = [r for r in doc["runs"] if r.get("phase") == "trial" and r["framework"] == framework]
        assert all(r["status"] == "ok" and r["config"]["seed"] == 0 and r["objective"] ==
                   max(r["epoch_val_accuracy"]) for r in trials)
        best = max(trials, key=lambda r: (r["objective"], -r["trial"]))
        assert chosen[framework]["best_trial"] == best["trial"]  # chosen on validation
        assert chosen[framework]["trials_run"] == 3 and chosen[framework]["stopped_by"] == "trials"
        finals = [r for r in doc["runs"] if r.get("phase") == "final" and r["framework"] == framework]
        assert sorted(r["config"]["seed"] for r in finals) == [1, 2]  # fresh seeds
        assert all(r["trial"] == best["trial"] and r["config"]["lr"] == best["config"]["lr"] for r in finals)
    assert doc["dataset"]["val_size"] > 0 and doc["config"]["dataset_options"]["val_fraction"] == 0.1
    assert "tuned over 3 trials each (random search" in result.stdout
    assert "verdict on the fresh seeds 1, 2" in result.stdout and "Accuracy over 2 seeds" in result.stdout
    report = (out / "report.md").read_text()
    assert "## Tuning" in report and (out / "tuning-lenet5.png").is_file()
    with collecting_figures(monkeypatch) as seen:  # every figure of a tuned report is legible
        write_report(out, tmp_path / "checked")
    assert "tuning-lenet5.png" in dict(seen) and [(name, found) for name, found in seen if found] == []
    assert (out / tuning.STUDY_FILE).is_file()


@pytest.mark.slow
def test_the_search_logs_every_trial_and_verdict_run_to_mlflow(local_search):
    from mlflow.tracking import MlflowClient

    from pybench.tracking import tracking_uri

    out, result = local_search
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri(out.parent / "mlf"))
    [experiment] = [e for e in client.search_experiments() if e.name == "out"]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert len(runs) == 10  # 3 trials and 2 verdict runs per framework
    tags = sorted((r.data.tags["framework"], r.data.tags["phase"]) for r in runs)
    assert tags.count(("jax", "trial")) == 3 and tags.count(("torch", "final")) == 2


@pytest.mark.slow
def test_a_search_on_ray_draws_the_same_configurations(local_search, cache, tmp_path):
    path = write(tmp_path, TUNED)
    out = tmp_path / "out"
    result = run_pybench("sweep", path, "--executor", "ray", "--out", out, "--no-report", cache=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = results(out)
    assert doc["config"]["executor"] == "ray"
    assert trial_configs(doc) == trial_configs(results(local_search[0]))
    assert sum(r.get("phase") == "final" and r["status"] == "ok" for r in doc["runs"]) == 4
    assert "tuned over 3 trials each" in result.stdout


@pytest.mark.slow
def test_tpe_with_median_pruning_stops_poor_trials_early(tmp_path, cache):
    path = write(tmp_path, 'frameworks = ["torch"]\nsearch = "tpe"\ntrials = 6\nfinal_seeds = 1\n'
                           'lr = {log_uniform = [1e-5, 0.3]}\nepochs = 3\ndevice = "cpu"\n')
    out = tmp_path / "out"
    result = run_pybench("sweep", path, "--out", out, "--no-report", cache=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [r for r in results(out)["runs"] if r.get("phase") == "trial"]
    pruned = [r for r in trials if r["trial_state"] == "pruned"]
    assert pruned, [(r["config"]["lr"], r["epoch_val_accuracy"]) for r in trials]
    for run in pruned:  # stopped by the worker after an epoch, before the last
        assert run["pruned_at_epoch"] == run["epochs_run"] < 3
    assert results(out)["tuning"]["models"]["lenet5"]["torch"]["pruned"] == len(pruned)


@pytest.mark.slow
def test_a_stopped_search_resumes_and_a_larger_budget_adds_trials(tmp_path, cache):
    text = ('frameworks = ["torch"]\nsearch = "random"\nfinal_seeds = 1\nlr = {log_uniform = [0.01, 0.1]}\n'
            'max_steps = 20\ndevice = "cpu"\n')
    path = write(tmp_path, text + "trials = 2\n")
    out = tmp_path / "out"
    first = run_pybench("sweep", path, "--out", out, "--no-report", cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {r["run_id"]: r for r in results(out)["runs"]}
    refused = run_pybench("sweep", path, "--out", out, "--no-report", cache=cache)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    write(tmp_path, text + "trials = 3\n")
    again = run_pybench("sweep", path, "--out", out, "--resume", "--no-report", cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {r["run_id"]: r for r in results(out)["runs"]}
    trials = sorted(r["trial"] for r in after.values() if r.get("phase") == "trial")
    assert trials == [0, 1, 2]
    for run_id in ("torch-lenet5-t0-s0", "torch-lenet5-t1-s0"):  # kept, not trained again
        assert after[run_id] == before[run_id]
    assert sum(r.get("phase") == "final" for r in after.values()) == 1  # the verdict of the best
