"""`pybench parity`: every model in torch, JAX and Knet, and proof that the checker can fail."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pybench.backends import availability
from pybench.run.fidelity import LOGIT_ATOL, LOSS_RTOL, check_model_parity, compare_arrays


class Arrays(dict):
    """An in-memory stand-in for np.load's NpzFile (a mapping with `.files`)."""

    @property
    def files(self):
        return list(self)


def arrays(seed=0, **changes):
    rng = np.random.default_rng(seed)
    base = Arrays({"eval_logits": rng.standard_normal((4, 10)),
                   "train_logits": rng.standard_normal((4, 10)),
                   "losses": np.array([2.3, 2.1, 1.9]),
                   "final/fc.weight": rng.standard_normal((10, 8))})
    base.update(changes)
    return base


def test_identical_arrays_pass_every_check():
    figures = compare_arrays(arrays(), arrays())
    assert figures["logits_ok"] and figures["losses_ok"] and figures["weights_ok"]


@pytest.mark.parametrize("change, failing", [
    ({"eval_logits": arrays()["eval_logits"] + 2 * LOGIT_ATOL}, "logits_ok"),
    ({"train_logits": arrays()["train_logits"] - 2 * LOGIT_ATOL}, "logits_ok"),
    ({"losses": np.array([2.3, 2.1, 1.9 * (1 + 2 * LOSS_RTOL)])}, "losses_ok"),
    ({"losses": np.array([2.3, 2.1])}, "losses_ok"),
    ({"final/fc.weight": arrays()["final/fc.weight"] + 1e-2}, "weights_ok"),
    ({"final/fc.weight": np.zeros((10, 9))}, "weights_ok"),
])
def test_each_check_fails_on_a_difference(change, failing):
    figures = compare_arrays(arrays(), arrays(**change))
    assert not figures[failing]


def test_a_parameter_count_mismatch_fails_the_model():
    records = {"torch": {"status": "ok", "n_params": 100, "shapes": {"w": [10, 10]}},
               "jax": {"status": "ok", "n_params": 90, "shapes": {"w": [9, 10]}},
               "knet": {"status": "unavailable", "reason": "no Julia"}}
    rows = check_model_parity("lenet5", records, {"torch": arrays(), "jax": arrays()}, 100)
    by_framework = {r["framework"]: r for r in rows}
    assert by_framework["torch"]["ok"]
    assert not by_framework["jax"]["ok"]
    assert not by_framework["jax"]["params_ok"] and not by_framework["jax"]["shapes_ok"]
    assert "ok" not in by_framework["knet"] and by_framework["knet"]["reason"] == "no Julia"


# Knet's float64 trajectory sums convolutions in another order than PyTorch: measured up to
# 5.2e-15 relative in the loss and 5.7e-14 in the weights over these runs (tests/test_knet_julia.py
# bounds its own, harder cases at 1e-9); JAX's figures are of the same size.
FLOAT64_BOUNDS = {"jax": (1e-9, 1e-8), "knet": (1e-9, 1e-8)}


@pytest.mark.slow
@pytest.mark.parametrize("models, extra", [
    ("lenet5,resnet8,resnet20", []),
    # ResNet-18 is 11M parameters: fewer, smaller steps keep CI quick.
    ("resnet18", ["--steps", "3", "--batch-size", "8"]),
    # The training recipes (issue 11): the learning rate changing at every step, AdamW's
    # decoupled decay and label smoothing through BatchNorm; Nesterov, L2 and a warm-up.
    ("resnet8", ["--optimizer", "adamw", "--lr", "0.003", "--weight-decay", "0.05",
                 "--schedule", "onecycle", "--label-smoothing", "0.1"]),
    ("lenet5", ["--nesterov", "--lr", "0.05", "--weight-decay", "5e-4", "--schedule", "cosine",
                "--warmup-steps", "3"]),
])
def test_parity_passes_for_every_model_in_every_framework(run_cli, tmp_path, models, extra):
    out = tmp_path / "parity"
    # Up to nine worker processes, three of them starting Julia and compiling Knet's float32
    # and float64 programs (~90 s each on 2 cores): 300 s was not enough on a loaded machine.
    result = run_cli("parity", "--frameworks", "torch,jax,knet", "--models", models,
                     "--out", out, *extra, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads((out / "parity.json").read_text())
    assert doc["ok"] and doc["trajectory_dtype"] == "float64"
    knet_status = availability("knet")
    frameworks = ["jax", "knet"] if knet_status.ok else ["jax"]
    for framework in frameworks:
        rows = [r for r in doc["results"] if r["framework"] == framework]
        assert [r["model"] for r in rows] == models.split(",")
        loss_bound, weight_bound = FLOAT64_BOUNDS[framework]
        for row in rows:
            assert row["status"] == "ok" and row["reference"] == "torch", row
            assert row["params_ok"] and row["shapes_ok"]
            assert max(row["max_abs_logit_diff_eval"], row["max_abs_logit_diff_train"]) <= LOGIT_ATOL
            # In float64 the frameworks' trajectories agree far inside the 1e-3 tolerance.
            assert row["max_rel_loss_diff"] <= loss_bound and row["max_abs_weight_diff"] <= weight_bound
            assert len(row["losses"]) == (3 if "--steps" in extra else 10)
    assert "PASS" in result.stdout
    if "--schedule" in extra:  # the options reached the trajectory, as recorded
        train = doc["train"]
        assert train["schedule"]["name"] == extra[extra.index("--schedule") + 1]
        assert train["optimizer"]["nesterov"] == ("--nesterov" in extra)
        assert train["optimizer"]["name"] == ("adamw" if "adamw" in extra else "sgd")


@pytest.mark.slow
@pytest.mark.parametrize("model, constructor, data, extra", [
    # The X-ray task of issue 23: NIH-layout grey 32x32 X-rays, one sigmoid per finding with
    # balanced positive weights, torchvision's ResNet-18 with conv1 folded, layer4 and fc trained.
    ("resnet18-imagenet", "resnet18", "nih", ["--task", "multilabel", "--pos-weight", "balanced",
                                              "--image-size", "32", "--trainable", "layer4,fc",
                                              "--steps", "5"]),
    # ResNet-50 on 32x32 digits: on 8x8 images its train-mode BatchNorm sees 1x1 maps, and a
    # float64 trajectory's rounding differences grow tenfold per step in every framework pair.
    ("resnet50-imagenet", "resnet50", "digits", ["--trainable", "layer3,layer4,fc",
                                                 "--image-size", "32", "--steps", "3"]),
    # CheXNet's DenseNet-121 by torchvision's names (norm5 frozen with its statistics), and
    # ResNet-34 with every layer trained (issue 33).
    ("densenet121-imagenet", "densenet121", "digits", [
        "--trainable", "features.denseblock4,classifier", "--image-size", "32", "--steps", "3"]),
    ("resnet34-imagenet", "resnet34", "digits", ["--image-size", "32", "--steps", "3"]),
])
def test_parity_passes_for_imagenet_models_from_a_weights_file_with_frozen_layers(
        run_cli, tmp_path, nih_release_zip, model, constructor, data, extra):
    import torch
    import torchvision

    from pybench.datasets import load_dataset
    from pybench.models import frozen_norms, frozen_params, head_layer
    from pybench.pretrained import fit_weights, read_weights
    from pybench.run.fidelity import LOGIT64_ATOL

    weights = tmp_path / f"{constructor}.pth"
    torch.manual_seed(0)
    torch.save(getattr(torchvision.models, constructor)().state_dict(), weights)
    out = tmp_path / "parity"
    dataset = str(nih_release_zip) if data == "nih" else data
    result = run_cli("parity", "--dataset", dataset, "--frameworks", "torch,jax,knet", "--models", model,
                     "--weights", weights, "--batch-size", "8", "--out", out, *extra, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads((out / "parity.json").read_text())
    assert doc["ok"] and doc["train"]["weights"] == str(weights.resolve())
    frameworks = ["torch", "jax", "knet"] if availability("knet").ok else ["torch", "jax"]
    rows = {r["framework"]: r for r in doc["results"]}
    for framework in frameworks[1:]:
        row = rows[framework]
        loss_bound, weight_bound = FLOAT64_BOUNDS[framework]
        assert row["max_rel_loss_diff"] <= loss_bound and row["max_abs_weight_diff"] <= weight_bound
        assert row["max_abs_logit_diff_float64"] <= LOGIT64_ATOL
    # Every framework started from the file (grey images: conv1 summed over colour) and left
    # the frozen parameters, and the frozen BatchNorm statistics, exactly where they were.
    size = int(extra[extra.index("--image-size") + 1])
    loaded = load_dataset(dataset, image_size=size, multilabel="--task" in extra, progress=False)
    if data == "nih":  # the multi-label loss trained it: 14 findings, one logit each
        assert loaded.multilabel and loaded.num_classes == 14 and doc["train"]["pos_weight"] == "balanced"
        assert len(rows["torch"]["losses"]) == 5
    params, buffers = fit_weights(read_weights(weights), model, loaded.in_shape, loaded.num_classes, 0)
    trainable = tuple(extra[extra.index("--trainable") + 1].split(",")) if "--trainable" in extra else ()
    frozen = frozen_params(model, loaded.in_shape, loaded.num_classes, trainable)
    stats = [f"{n}.{s}" for n in frozen_norms(model, loaded.in_shape, loaded.num_classes, frozen)
             for s in ("running_mean", "running_var")]
    for framework in frameworks:
        with np.load(out / "arrays" / f"{framework}-{model}.npz") as arrays:
            for name in frozen:
                np.testing.assert_array_equal(arrays[f"final/{name}"], params[name].astype(np.float64))
            for name in stats:
                np.testing.assert_array_equal(arrays[f"final/{name}"], buffers[name].astype(np.float64))
            head = f"final/{head_layer(model)}.bias"
            assert not np.array_equal(arrays[head], params[head.removeprefix("final/")].astype(np.float64))
