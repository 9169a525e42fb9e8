"""Your own CNN, defined once (issue 33): a TOML or JSON file of layers, built identically in
every framework, with the built-in models' weights, FLOPs and memory rules, and one-line errors
naming the file, the layer and the field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pybench import models
from pybench.backends import availability
from pybench.errors import PybenchError
from pybench.models import cnn, dropout

REPO = Path(__file__).resolve().parent.parent
LENET_FILE = REPO / "examples" / "lenet5.toml"
TISSUE_FILE = REPO / "examples" / "tissue-cnn.toml"
MNIST = (1, 28, 28)


def write(tmp_path: Path, body: str, name: str = "net.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_the_lenet5_file_is_the_built_in_lenet5():
    name = models.model_names([str(LENET_FILE)])[0]
    assert name == "lenet5-file" and models.family(name) == models.CNN
    drawn, _ = models.init_weights(name, MNIST, 10, seed=7)
    built_in, _ = models.init_weights("lenet5", MNIST, 10, seed=7)
    assert list(drawn) == list(built_in)
    for key in built_in:
        np.testing.assert_array_equal(drawn[key], built_in[key])
    for measure in (models.n_params, models.forward_flops, models.activation_elements):
        assert measure(name, MNIST, 10) == measure("lenet5", MNIST, 10)
    assert models.head_layer(name) == "fc3" and models.first_conv(name) == "conv1"


def test_a_json_file_is_the_same_model_as_its_toml_twin(tmp_path):
    toml_spec = cnn.read_cnn_file(TISSUE_FILE)
    as_json = write(tmp_path, json.dumps({"name": "tissue-json", "layers": [
        {k: v for k, v in layer.items() if v is not None} for layer in toml_spec.layers]}), "net.json")
    json_spec = cnn.read_cnn_file(as_json)
    assert json_spec.fingerprint == toml_spec.fingerprint  # the architecture, not the name
    assert json_spec.layers == toml_spec.layers


def test_the_tissue_cnn_shapes_follow_the_images():
    name = models.model_names([str(TISSUE_FILE)])[0]
    ops = models.ops(name, (3, 64, 64), 9)
    dense = [op for op in ops if isinstance(op, models.Dense)]
    assert [(d.name, d.in_features, d.out_features) for d in dense] == [("fc1", 128, 9)]
    assert [op.p for op in ops if isinstance(op, models.Dropout)] == [0.3]
    shapes = models.param_shapes(name, (3, 64, 64), 9)
    assert shapes["conv1.weight"] == (32, 3, 3, 3) and "conv1.bias" not in shapes
    assert models.buffer_shapes(name, (3, 64, 64), 9)["bn3.running_var"] == (128,)
    # FLOPs: 2 * cin * k^2 * cout * output pixels per convolution, plus the dense layer.
    expected = 2 * (3 * 9 * 32 * 64 * 64 + 32 * 9 * 64 * 32 * 32 + 64 * 9 * 128 * 16 * 16) + 2 * 128 * 9
    assert models.forward_flops(name, (3, 64, 64), 9) == expected


@pytest.mark.parametrize("body, fragments", [
    ('name = "x"\nlayers = [{type = "conv2d", channels = 4, kernel = 3}, {type = "dense"}]',
     ("layer 1", "unknown type 'conv2d'", "did you mean 'conv'")),
    ('name = "x"\nlayers = [{type = "conv", channels = 4, kernal = 3}, {type = "dense"}]',
     ("layer 1 (conv)", "unknown field 'kernal'", "did you mean 'kernel'")),
    ('name = "x"\nlayers = [{type = "conv", kernel = 3}, {type = "dense"}]',
     ("layer 1 (conv)", "field 'channels' is required")),
    ('name = "x"\nlayers = [{type = "dropout", p = 1.5}, {type = "dense"}]',
     ("layer 1 (dropout)", "field 'p' = 1.5", "[0, 1)")),
    ('name = "x"\nlayers = [{type = "conv", channels = 0, kernel = 3}, {type = "dense"}]',
     ("layer 1 (conv)", "field 'channels' = 0", ">= 1")),
    ('name = "x"\nlayers = [{type = "flatten"}, {type = "relu"}]',
     ("the last layer must be dense",)),
    ('name = "lenet5"\nlayers = [{type = "flatten"}, {type = "dense"}]',
     ("name 'lenet5' is a built-in model's",)),
    ('name = "x"\nlayers = [{type = "flatten"}, {type = "dense", name = "fc"}, {type = "dense", name = "fc"}]',
     ("layer 3 (dense)", "name 'fc' is already layer 2's")),
    ('name = "x"\nlayers = [{type = "max_pool", kernel = 2, padding = 2}, {type = "flatten"}, {type = "dense"}]',
     ("layer 1 (max_pool)", "padding 2 is more than half the kernel 2")),
    ('name = "x"\nwidth = 3\nlayers = [{type = "flatten"}, {type = "dense"}]',
     ("unknown key 'width'",)),
    ('name = "x"\nlayers = [{type = "flatten"} {type = "dense"}]', ("not valid TOML",)),
])
def test_a_file_that_cannot_be_read_is_one_line_naming_the_layer_and_field(tmp_path, body, fragments):
    path = write(tmp_path, body)
    with pytest.raises(PybenchError) as caught:
        models.model_names([str(path)])
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("layers, fragments", [
    ('{type = "conv", channels = 4, kernel = 9}, {type = "flatten"}, {type = "dense"}',
     ("layer 1 (conv conv1)", "field 'kernel' = 9 does not fit the 8x8 maps", "from 8x8 images")),
    ('{type = "conv", channels = 4, kernel = 3}, {type = "dense"}',
     ("layer 2 (dense fc1)", "put a flatten or a global_avg_pool before it")),
    ('{type = "flatten"}, {type = "batchnorm"}, {type = "dense"}',
     ("layer 2 (batchnorm bn1)", "comes after the maps were flattened")),
    ('{type = "flatten"}, {type = "dense", units = 3}',
     ("layer 2 (dense fc1)", "field 'units' = 3, but the data has 10 classes")),
])
def test_shapes_that_do_not_fit_the_images_name_the_layer_and_field(tmp_path, layers, fragments):
    path = write(tmp_path, f'name = "fit-{abs(hash(layers))}"\nlayers = [{layers}]')
    name = models.model_names([str(path)])[0]
    assert not models.builds_for(name, (1, 8, 8), 10)
    with pytest.raises(PybenchError) as caught:
        models.layers(name, (1, 8, 8), 10)
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_the_cli_refuses_a_bad_file_in_one_line(cli_error, tmp_path):
    path = write(tmp_path, 'name = "x"\nlayers = [{type = "conv", channels = 4}, {type = "dense"}]')
    cli_error("compare", "digits", "--models", str(path), "--frameworks", "torch",
              fragments=(str(path), "layer 1 (conv)", "field 'kernel' is required"))
    cli_error("compare", "digits", "--models", str(tmp_path / "missing.toml"), "--frameworks", "torch",
              fragments=("missing.toml", "cannot read the CNN file"))


def test_dropout_masks_are_one_function_of_position_step_and_layer():
    op = models.Dropout(0.3, index=0)
    index = np.arange(200_000, dtype=np.int64)
    keep = dropout.keep_mask(index, 5, op)
    assert abs(keep.mean() - 0.7) < 0.005  # dropped with probability p
    # uint32 arithmetic (JAX, Julia) and masked int64 (torch) give the same bits.
    unsigned = dropout.keep_mask(index.astype(np.uint32), np.full(index.shape, 5, np.uint32), op,
                                 wrap=lambda v: v)
    np.testing.assert_array_equal(unsigned, keep)
    assert not np.array_equal(dropout.keep_mask(index, 6, op), keep)  # a new mask each step
    assert not np.array_equal(dropout.keep_mask(index, 5, models.Dropout(0.3, index=1)), keep)
    assert dropout.scale(0.3) == 1 / 0.7


def test_torch_and_jax_drop_the_same_elements():
    pytest.importorskip("torch")
    import torch

    from pybench.backends import jax_backend, torch_backend

    op = models.Dropout(0.5, index=2)
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6)).astype(np.float32)
    reference = dropout.keep_mask(np.arange(x.size).reshape(x.shape), 11, op)
    torch_scale = torch_backend.dropout_scale(op, torch.from_numpy(x), 11).numpy()
    np.testing.assert_array_equal(torch_scale > 0, reference)
    np.testing.assert_array_equal(torch_scale[reference], np.float32(2.0))
    for layout in (jax_backend.NCHW, jax_backend.NHWC):
        arranged = jax_backend.to_layout(x, layout)
        keep = np.asarray(jax_backend.dropout_keep(op, arranged, 11, layout))
        if layout == jax_backend.NHWC:
            keep = keep.transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(keep, reference, err_msg=layout)


@pytest.mark.slow
def test_the_lenet5_file_reproduces_the_built_in_float64_losses_in_every_framework(run_cli, tmp_path):
    out = tmp_path / "parity"
    result = run_cli("parity", "--frameworks", "torch,jax,knet", "--models", f"lenet5,{LENET_FILE}",
                     "--steps", "20", "--out", out, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads((out / "parity.json").read_text())
    assert doc["cnn_models"]["lenet5-file"]["fingerprint"] == cnn.read_cnn_file(LENET_FILE).fingerprint
    frameworks = ["torch", "jax", "knet"] if availability("knet").ok else ["torch", "jax"]
    for framework in frameworks:
        rows = {r["model"]: r for r in doc["results"] if r["framework"] == framework}
        built_in, from_file = (np.asarray(rows[m]["losses"]) for m in ("lenet5", "lenet5-file"))
        assert len(built_in) == len(from_file) == 20, framework
        np.testing.assert_allclose(from_file, built_in, rtol=1e-12, atol=0, err_msg=framework)


@pytest.mark.slow
def test_compare_trains_a_cnn_file_in_every_framework(run_cli, tmp_path):
    net = write(tmp_path, '''
        name = "small-cnn"
        description = "two conv blocks, dropout, dense"
        layers = [
          {type = "conv", channels = 8, kernel = 3, padding = 1},
          {type = "batchnorm"},
          {type = "relu"},
          {type = "avg_pool", kernel = 2},
          {type = "conv", channels = 16, kernel = 3, stride = 2, bias = false},
          {type = "relu"},
          {type = "max_pool", kernel = 3, stride = 1, padding = 1},
          {type = "flatten"},
          {type = "dropout", p = 0.25},
          {type = "dense", units = 32},
          {type = "relu"},
          {type = "dense", name = "head"},
        ]
        ''')
    out = tmp_path / "run"
    result = run_cli("compare", "digits", "--frameworks", "torch,jax,knet", "--models", net,
                     "--epochs", "3", "--lr", "0.05", "--out", out, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    spec = cnn.read_cnn_file(net)
    assert doc["config"]["models"] == ["small-cnn"]
    assert doc["cnn_models"]["small-cnn"]["fingerprint"] == spec.fingerprint
    assert doc["cnn_models"]["small-cnn"]["layers"] == [dict(layer) for layer in spec.layers]
    frameworks = ["torch", "jax", "knet"] if availability("knet").ok else ["torch", "jax"]
    runs = {r["framework"]: r for r in doc["runs"]}
    for framework in frameworks:
        run = runs[framework]
        assert run["status"] == "ok" and run["model"] == "small-cnn", run.get("reason")
        assert run["model_fingerprint"] == spec.fingerprint
        assert run["test_accuracy"] > 0.8, (framework, run["test_accuracy"])  # digits, 3 epochs
    # Same canonical start, and (dropout's masks included) the same first float32 loss.
    assert len({runs[f]["init_fingerprint"] for f in frameworks}) == 1
    first = [runs[f]["losses"][0] for f in frameworks]
    assert max(first) - min(first) < 1e-4, first
    assert "small-cnn" in (out / "report.md").read_text()
