"""Fidelity: what "the same function and the same training" means in numbers, stated once.

The tolerances `parity` holds every framework to, the framework the others are checked against,
and the comparisons themselves: a parity run's arrays against the reference's
(`compare_arrays`, `check_model_parity`) and `compare`'s forward check before training
(`forward_parity`). Framework-neutral: only numpy arrays and records are read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

# Every check of one framework against another is against this one when it ran: its numbers are
# the ones most readers know.
REFERENCE_FRAMEWORK = "torch"


def reference_framework(finished: Iterable[str]) -> str | None:
    """The framework the others are checked against: REFERENCE_FRAMEWORK when it finished, else
    the first that did (alphabetically, so the choice does not depend on the order of runs)."""
    finished = sorted(set(finished))
    if REFERENCE_FRAMEWORK in finished:
        return REFERENCE_FRAMEWORK
    return finished[0] if finished else None


LOGIT_ATOL = 1e-4  # max abs difference of logits, float32 on CPU
# Deep train-mode networks round more than LOGIT_ATOL allows: ResNet-50's float32 train-mode logits
# are 2.3e-4 from its own float64 ones in torch alone (JAX's 2.2e-4, torch against JAX 2.4e-4),
# while the float64 forwards agree to 6e-13. So the float32 bound is the larger of LOGIT_ATOL and
# this many times the reference's own float32 error (its float32 logits against its float64 ones,
# measured in the same worker): two float32 implementations each err by about that much.
FLOAT32_NOISE_FACTOR = 3
LOGIT64_ATOL = 1e-9  # the float64 forward (trajectory dtype): a wrong formula shows, rounding not
LOSS_RTOL = 1e-3  # relative difference of the loss at every step
WEIGHT_RTOL, WEIGHT_ATOL = 1e-3, 1e-4  # final weights: |a - b| <= atol + rtol * |b|


def compare_arrays(ref: dict, other: dict) -> dict:
    """The figures of one framework against the reference, and whether each is in tolerance."""
    ref_losses, losses = ref["losses"], other["losses"]
    if len(losses) != len(ref_losses):
        loss_rel = None  # not comparable (JSON has no infinity)
    elif len(ref_losses):
        loss_rel = float(np.max(np.abs(losses - ref_losses)
                                / np.maximum(np.abs(ref_losses), 1e-12)))
    else:
        loss_rel = 0.0
    finals = sorted(k for k in ref.files if k.startswith("final/"))
    weight_diff, weights_close = 0.0, set(finals) == {k for k in other.files
                                                      if k.startswith("final/")}
    for k in finals if weights_close else []:
        a, b = other[k], ref[k]
        if a.shape != b.shape:
            weights_close = False
            break
        weight_diff = max(weight_diff, float(np.max(np.abs(a - b))))
        weights_close &= bool(np.allclose(a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL))
    eval_diff = float(np.max(np.abs(other["eval_logits"] - ref["eval_logits"])))
    train_diff = float(np.max(np.abs(other["train_logits"] - ref["train_logits"])))
    tolerance, exact = logit_tolerance(ref), {}
    if "train_logits64" in ref.files and "train_logits64" in other.files:
        # The same forward in float64: equal up to summation order, or a formula differs.
        diff64 = max(float(np.max(np.abs(other[f"{mode}_logits64"] - ref[f"{mode}_logits64"])))
                     for mode in ("eval", "train"))
        exact = {"max_abs_logit_diff_float64": diff64}
    return {"max_abs_logit_diff_eval": eval_diff, "max_abs_logit_diff_train": train_diff,
            **exact, "logit_tolerance": tolerance,
            "max_rel_loss_diff": loss_rel, "max_abs_weight_diff": weight_diff,
            "logits_ok": max(eval_diff, train_diff) <= tolerance
            and exact.get("max_abs_logit_diff_float64", 0.0) <= LOGIT64_ATOL,
            "losses_ok": loss_rel is not None and loss_rel <= LOSS_RTOL,
            "weights_ok": weights_close}


def logit_tolerance(ref) -> float:
    """The float32 logits bound: LOGIT_ATOL, or FLOAT32_NOISE_FACTOR times the reference's own
    float32 rounding where that is larger (measured when the trajectory ran in float64)."""
    if "train_logits64" not in ref.files:
        return LOGIT_ATOL
    own = max(float(np.max(np.abs(ref[f"{mode}_logits"] - ref[f"{mode}_logits64"])))
              for mode in ("eval", "train"))
    return max(LOGIT_ATOL, FLOAT32_NOISE_FACTOR * own)


def check_model_parity(model: str, records: dict[str, dict], arrays: dict[str, dict],
                       expected_params: int) -> list[dict]:
    ok_frameworks = [f for f, r in records.items() if r["status"] == "ok"]
    rows = []
    reference = reference_framework(ok_frameworks)
    for framework, record in records.items():
        row = {"model": model, "framework": framework, "status": record["status"],
               "reason": record.get("reason", ""), "reference": reference}
        if record["status"] == "ok":
            ref = records[reference]
            row.update(n_params=record["n_params"],
                       params_ok=record["n_params"] == ref["n_params"] == expected_params,
                       shapes_ok=record["shapes"] == ref["shapes"],
                       losses=arrays[framework]["losses"].tolist(),
                       **compare_arrays(arrays[reference], arrays[framework]))
            row["ok"] = all(row[k] for k in ("params_ok", "shapes_ok", "logits_ok",
                                             "losses_ok", "weights_ok"))
        rows.append(row)
    return rows


def forward_parity(runs: list[dict], out_dir: Path) -> None:
    """Add each ok run's forward-check figures against the reference framework's logits
    (`reference_framework`), run against run of the same model, seed and repeat (the
    seed sets the initial weights)."""
    groups: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        if run.get("status") == "ok":
            key = (run["model"], run.get("seed"), run.get("repeat"))
            groups.setdefault(key, {})[run["framework"]] = run
    for runs_of_group in groups.values():
        ref = reference_framework(runs_of_group)
        ref_arrays = np.load(out_dir / runs_of_group[ref]["parity_arrays"])
        for run in runs_of_group.values():
            arrays = np.load(out_dir / run["parity_arrays"])
            diffs = {mode: float(np.max(np.abs(arrays[f"{mode}_logits"]
                                               - ref_arrays[f"{mode}_logits"])))
                     for mode in ("eval", "train")}
            tolerance = logit_tolerance(ref_arrays)
            run["parity"] = {"reference": ref,
                             "max_abs_logit_diff_eval": diffs["eval"],
                             "max_abs_logit_diff_train": diffs["train"],
                             "tolerance": tolerance,
                             "ok": max(diffs.values()) <= tolerance}


def prediction_agreement(document: dict, out_dir: Path) -> None:
    """With an unlabelled folder predicted (`document["predict"]`), how often each pair of
    frameworks gave an image the same label, run against run of the same model, seed and repeat
    (read from the runs' prediction CSVs): `document["predict"]["agreement"]`."""
    import pandas as pd

    from pybench.datasets.unlabelled import agreement

    if not document.get("predict"):
        return
    groups: dict[tuple, dict[str, list[str]]] = {}
    for run in document["runs"]:
        if run.get("status") == "ok" and run.get("predict_csv"):
            key = (run["model"], run.get("seed"), run.get("repeat"))
            labels = pd.read_csv(out_dir / run["predict_csv"], usecols=["label"], dtype=str)["label"]
            groups.setdefault(key, {})[run["framework"]] = labels.fillna("").tolist()
    document["predict"]["agreement"] = [
        {"model": model, "seed": seed, "repeat": repeat, **pair}
        for (model, seed, repeat), predicted in groups.items() for pair in agreement(predicted)]
