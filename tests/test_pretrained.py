"""`--weights FILE`: a PyTorch state_dict, made by torchvision's own constructors here (nothing is
downloaded), fitted to the task the same way for every framework (pybench.pretrained)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision

from pybench import models, pretrained
from pybench.backends import availability, get_backend
from pybench.backends.contract import ModelInput, OptimizerConfig
from pybench.errors import PybenchError


def torchvision_file(tmp_path, constructor="resnet18", seed=7, **kwargs):
    """A state_dict file as torchvision's pretrained weights are saved, with random weights and
    BatchNorm statistics that are not the defaults (so a test can tell them from a fresh draw)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, constructor)(**kwargs)
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    path = tmp_path / f"{constructor}.pth"
    torch.save(net.state_dict(), path)
    return path, {k: v.numpy() for k, v in net.state_dict().items()}


def test_every_array_is_loaded_and_the_head_is_the_seeded_draw(tmp_path):
    path, saved = torchvision_file(tmp_path)
    params, buffers = pretrained.fit_weights(pretrained.read_weights(path), "resnet18-imagenet",
                                             (3, 64, 64), 14, seed=3)
    drawn, _ = models.init_weights("resnet18-imagenet", (3, 64, 64), 14, seed=3)
    for name, array in {**params, **buffers}.items():
        if name.startswith("fc."):
            np.testing.assert_array_equal(array, drawn[name])
            assert array.shape[0] == 14
        else:
            np.testing.assert_array_equal(array, saved[name])
        assert array.dtype == np.float32
    fit = pretrained.describe_fit(pretrained.read_weights(path), "resnet18-imagenet", (3, 64, 64), 14)
    assert fit == {"head": "replaced (seeded draw)", "grey_to_colour": False}


def test_a_head_that_fits_the_classes_is_kept(tmp_path):
    path, saved = torchvision_file(tmp_path, num_classes=5)
    params, _ = pretrained.fit_weights(pretrained.read_weights(path), "resnet18-imagenet",
                                       (3, 32, 32), 5, seed=0)
    np.testing.assert_array_equal(params["fc.weight"], saved["fc.weight"])


def test_grey_images_compute_what_the_colour_model_computes_on_the_repeated_channel(tmp_path):
    path, _ = torchvision_file(tmp_path, num_classes=4)
    params, buffers = pretrained.fit_weights(pretrained.read_weights(path), "resnet18-imagenet",
                                             (1, 48, 48), 4, seed=0)
    assert params["conv1.weight"].shape == (64, 1, 7, 7)
    grey = np.random.default_rng(1).standard_normal((3, 1, 48, 48)).astype(np.float32)
    reference = torchvision.models.resnet18(num_classes=4)
    reference.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(np.repeat(grey, 3, axis=1))).numpy()
    backend = get_backend("torch", "cpu")
    state = backend.init_state(ModelInput("resnet18-imagenet", (1, 48, 48), 4, params, buffers),
                               OptimizerConfig())
    # Equal up to float32 rounding: the three channels are summed before the convolution.
    np.testing.assert_allclose(backend.forward(state, grey, train=False), expected, atol=1e-4)


def test_an_npz_with_the_same_arrays_gives_the_same_weights(tmp_path):
    path, saved = torchvision_file(tmp_path)
    np.savez(tmp_path / "same.npz", **saved)
    from_pt = pretrained.fit_weights(pretrained.read_weights(path), "resnet18-imagenet", (3, 32, 32), 2, 0)
    from_npz = pretrained.fit_weights(pretrained.read_weights(tmp_path / "same.npz"),
                                      "resnet18-imagenet", (3, 32, 32), 2, 0)
    assert models.weights_fingerprint(*from_pt) == models.weights_fingerprint(*from_npz)


def test_the_torch_file_is_converted_once_into_the_cache(tmp_path, isolated_cache):
    path, _ = torchvision_file(tmp_path)
    cached = pretrained.prepare(path)
    assert cached.is_file() and cached.is_relative_to(isolated_cache) and cached.suffix == ".npz"
    mtime = cached.stat().st_mtime_ns
    assert pretrained.prepare(path) == cached and cached.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("model, fragment", [
    ("resnet50-imagenet", "does not fit resnet50-imagenet: 165 of its arrays missing (e.g. "
                          "layer1.0.conv3.weight, layer1.0.bn3.weight)"),
    ("resnet18", "conv1.weight has shape (64, 3, 7, 7), resnet18 needs (64, 3, 3, 3)"),
])
def test_weights_of_another_model_fail_naming_the_array(tmp_path, model, fragment):
    path, _ = torchvision_file(tmp_path)
    with pytest.raises(PybenchError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        pretrained.fit_weights(pretrained.read_weights(path), model, (3, 32, 32), 10, 0,
                               source=str(path))


def test_a_missing_array_fails_naming_it(tmp_path):
    _, saved = torchvision_file(tmp_path)
    del saved["layer4.1.bn2.running_var"]
    np.savez(tmp_path / "partial.npz", **saved)
    with pytest.raises(PybenchError, match="1 of its arrays missing \\(e.g. layer4.1.bn2.running_var\\)"):
        pretrained.fit_weights(pretrained.read_weights(tmp_path / "partial.npz"),
                               "resnet18-imagenet", (3, 32, 32), 10, 0)


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    (b"not a torch file", "not a PyTorch state_dict file torch.load can read"),
    ("list", "holds a list, not a state_dict"),
])
def test_bad_weight_files_fail_in_one_line(tmp_path, cli_error, content, fragment):
    path = tmp_path / "weights.pt"
    if content == "list":
        torch.save([torch.zeros(2)], path)
    elif content is not None:
        path.write_bytes(content)
    line = cli_error("parity", "--frameworks", "torch", "--models", "resnet8", "--weights", path,
                     fragments=(fragment,))
    assert str(path) in line


@pytest.mark.slow
def test_an_x_ray_multilabel_fine_tune_compares_every_framework_from_the_loaded_weights(
        run_cli, tmp_path, nih_release_zip):
    """Issue 23's comparison: an NIH-layout zip, one sigmoid per finding, torchvision's
    ResNet-18 loaded from a file with only layer4 and fc trained, in torch, JAX and Knet: one
    init fingerprint (the fitted file's), per-finding AUCs for all three, t-SNE panels."""
    path, _ = torchvision_file(tmp_path, num_classes=1000)
    frameworks = ["torch", "jax", "knet"] if availability("knet").ok else ["torch", "jax"]
    out = tmp_path / "run"
    result = run_cli("compare", str(nih_release_zip), "--task", "multilabel", "--pos-weight", "balanced",
                     "--image-size", "32", "--models", "resnet18-imagenet", "--weights", path,
                     "--trainable", "layer4,fc", "--frameworks", ",".join(frameworks),
                     "--max-steps", "4", "--batch-size", "8", "--embeddings", "40", "--out", out,
                     timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["weights"] == str(path.resolve())
    assert document["config"]["weights_fit"] == {
        "resnet18-imagenet": {"head": "replaced (seeded draw)", "grey_to_colour": True}}
    from pybench.datasets import load_dataset

    xrays = load_dataset(str(nih_release_zip), image_size=32, multilabel=True, progress=False)
    expected = models.weights_fingerprint(*pretrained.fit_weights(
        pretrained.read_weights(path), "resnet18-imagenet", xrays.in_shape, xrays.num_classes, 0))
    runs = document["runs"]
    assert [r["status"] for r in runs] == ["ok"] * len(frameworks), runs
    assert {r["init_fingerprint"] for r in runs} == {expected}
    assert expected != models.weights_fingerprint(*models.init_weights(
        "resnet18-imagenet", xrays.in_shape, xrays.num_classes, 0))
    # Each run's score is its mean per-finding AUC, recomputed here from its predictions.
    from sklearn.metrics import roc_auc_score

    for run in runs:
        with np.load(out / run["predictions"]) as stored:
            labels, logits = stored["labels"], stored["logits"]
            assert labels.shape == logits.shape == (len(xrays.test), 14) and stored["embeddings"].shape[0] == 40
        scored = [k for k in range(14) if 0 < labels[:, k].sum() < len(labels)]
        assert run["test_accuracy"] == pytest.approx(
            np.mean([roc_auc_score(labels[:, k], logits[:, k]) for k in scored]))
    report = (out / "report.md").read_text()
    assert "mean ROC AUC over findings" in report and "mean ROC AUC over findings" in result.stdout
    section = report.split("### Test-set metrics (multi-label)")[1]
    header = " | ".join(f"{framework} | {framework} 95% CI" for framework in frameworks)
    aucs = section.split(f"| finding | test positives | {header} |")[1]
    assert "| Effusion |" in aucs and "| Infiltration |" in aucs
    for framework in frameworks:
        assert f"### {framework}\n\nSensitivity and specificity of the decision sigmoid ≥ 0.5" in section
    assert (out / "tsne-resnet18-imagenet.png").stat().st_size > 10_000
    assert (out / "roc-resnet18-imagenet.png").is_file()
