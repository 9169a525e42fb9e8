"""A small numpy model of Knet 1.4.10's semantics, to test the Python-side layouts without Julia.

Arrays here are indexed as Julia indexes them: images (W, H, C, N), conv weights
(kW, kH, Cin, Cout), scores (classes, N), and `mat` flattens column-major. Each function mirrors
one Knet call used by julia/KnetModels (read from Knet's src/ops20/conv.jl, batchnorm.jl,
loss.jl), and the models mirror KnetModels' lenet5.jl and resnets.jl line for line, so a layout
mistake in pybench.backends.knet_layout shows up here as wrong logits.

Every function computes in the dtype of its inputs (float32, or float64 as the parity trajectory
runs), like KnetModels, whose arrays all share the canonical weights' element type.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pybench import models
from pybench.models import cnn


def conv4(w, x, padding=0, stride=1, mode=0):
    """Knet `conv4`: mode 0 is true convolution (kernel flipped), mode 1 cross-correlation.

    NNlib (Knet's CPU path) and cuDNN (GPU) agree on this: mode=1 is what PyTorch computes.
    """
    if mode == 0:
        w = w[::-1, ::-1]  # true convolution = cross-correlation with the flipped kernel
    kw, kh = w.shape[:2]
    xp = np.pad(x, ((padding, padding), (padding, padding), (0, 0), (0, 0)))
    windows = sliding_window_view(xp, (kw, kh), axis=(0, 1))[::stride, ::stride]
    # windows: (Wout, Hout, Cin, N, kW, kH); sum over kernel positions and input channels.
    out = np.einsum("ijcnpq,pqco->ijon", windows, w, optimize=True)
    return out.astype(np.result_type(w, x), copy=False)


def pool(x, window=2):
    """Knet `pool` with mode 0 (max), stride = window, no padding (floor of the size)."""
    w, h = (x.shape[0] // window) * window, (x.shape[1] // window) * window
    windows = sliding_window_view(x[:w, :h], (window, window), axis=(0, 1))[::window, ::window]
    return windows.max(axis=(4, 5))


def global_avg_pool(x):
    return x.mean(axis=(0, 1), keepdims=True)


def mat(x):
    """Knet `mat`: all but the last dim joined, in Julia's column-major order."""
    return x.reshape(-1, x.shape[-1], order="F")


def dense(w, b, x):
    return w @ mat(x) + b[:, None]


def relu(x):
    return np.maximum(x, 0)


def batchnorm(x, weight, bias, mean, var, training, eps=models.BN_EPS):
    """Normalise per channel (dim 3 of (W, H, C, N)) with batch statistics (biased variance)
    in training, running statistics otherwise: what Knet's batchnorm computes."""
    shape = (1, 1, -1, 1)
    if training:
        mean = x.mean(axis=(0, 1, 3))
        var = x.var(axis=(0, 1, 3))  # ddof=0: biased, as Knet and PyTorch normalise
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * weight.reshape(shape) + bias.reshape(shape)


def update_running_stats(x, mean, var, momentum=models.BN_MOMENTUM):
    """PyTorch's rule, which KnetModels implements itself: the unbiased batch variance.

    (Knet's own CPU batchnorm updates with the biased variance; see KnetModels/src/layers.jl.)
    """
    batch_mean = x.mean(axis=(0, 1, 3))
    batch_var = x.var(axis=(0, 1, 3), ddof=1)
    return ((1 - momentum) * mean + momentum * batch_mean,
            (1 - momentum) * var + momentum * batch_var)


def nll(scores, labels):
    """Knet `nll(scores, labels)`: scores (classes, N), 1-based labels, mean over instances."""
    shifted = scores - scores.max(axis=0, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    return -logp[labels - 1, np.arange(scores.shape[1])].mean()


# --- models, as KnetModels builds them, from Knet-layout weights --------------------------------

def conv_layer(weights, name, x, padding, stride, mode, flip=False):
    w = weights[f"{name}.weight"]
    if flip:
        w = w[::-1, ::-1]
    y = conv4(w, x, padding=padding, stride=stride, mode=mode)
    if f"{name}.bias" in weights:
        y = y + weights[f"{name}.bias"].reshape(1, 1, -1, 1)
    return y


def bn_layer(weights, buffers, name, x, training):
    return batchnorm(x, weights[f"{name}.weight"], weights[f"{name}.bias"],
                     buffers[f"{name}.running_mean"], buffers[f"{name}.running_var"], training)


LENET5_CONV1_PADDING = cnn.LENET5_LAYERS[0]["padding"]  # LeNet-5's first convolution pads by 2


def lenet5(weights, x, mode=1, flip=False):
    x = pool(relu(conv_layer(weights, "conv1", x, LENET5_CONV1_PADDING, 1, mode, flip)))
    x = pool(relu(conv_layer(weights, "conv2", x, 0, 1, mode, flip)))
    x = relu(dense(weights["fc1.weight"], weights["fc1.bias"], x))
    x = relu(dense(weights["fc2.weight"], weights["fc2.bias"], x))
    return dense(weights["fc3.weight"], weights["fc3.bias"], x)


def basic_block(weights, buffers, block, x, training, mode, flip):
    p = block["prefix"]
    y = conv_layer(weights, f"{p}.conv1", x, 1, block["stride"], mode, flip)
    y = relu(bn_layer(weights, buffers, f"{p}.bn1", y, training))
    y = conv_layer(weights, f"{p}.conv2", y, 1, 1, mode, flip)
    y = bn_layer(weights, buffers, f"{p}.bn2", y, training)
    if block["downsample"]:
        x = conv_layer(weights, f"{p}.downsample.0", x, 0, block["stride"], mode, flip)
        x = bn_layer(weights, buffers, f"{p}.downsample.1", x, training)
    return relu(y + x)


def resnet(description, weights, buffers, x, training=False, mode=1, flip=False):
    x = relu(bn_layer(weights, buffers, "bn1",
                      conv_layer(weights, "conv1", x, 1, 1, mode, flip), training))
    for block in description["blocks"]:
        x = basic_block(weights, buffers, block, x, training, mode, flip)
    return dense(weights["fc.weight"], weights["fc.bias"], global_avg_pool(x))


def forward(description, weights, buffers, x, training=False, mode=1, flip=False):
    """Scores (classes, N) for images x (W, H, C, N), weights in Knet layout."""
    if description["model"] == "lenet5":
        return lenet5(weights, x, mode, flip)
    return resnet(description, weights, buffers, x, training, mode, flip)


# --- the same models in PyTorch, from canonical weights: the logits everything must match -------

def torch_forward(description, params, buffers, images, training=False):
    """Logits (N, classes) from torch.nn.functional with canonical weights (NCHW images).

    Running statistics are copied, so a training-mode call leaves `buffers` unchanged.
    """
    import torch
    import torch.nn.functional as F

    p = {k: torch.from_numpy(np.asarray(v)) for k, v in params.items()}
    b = {k: torch.from_numpy(np.array(v)) for k, v in buffers.items()}
    x = torch.from_numpy(np.ascontiguousarray(images))  # float32 or float64, as the weights

    def conv(name, x, stride=1, padding=0):
        return F.conv2d(x, p[f"{name}.weight"], p.get(f"{name}.bias"), stride, padding)

    def bn(name, x):
        return F.batch_norm(x, b[f"{name}.running_mean"], b[f"{name}.running_var"],
                            p[f"{name}.weight"], p[f"{name}.bias"], training,
                            models.BN_MOMENTUM, models.BN_EPS)

    def fc(name, x):
        return F.linear(x, p[f"{name}.weight"], p[f"{name}.bias"])

    with torch.no_grad():
        if description["model"] == "lenet5":
            x = F.max_pool2d(F.relu(conv("conv1", x, padding=LENET5_CONV1_PADDING)), 2)
            x = F.max_pool2d(F.relu(conv("conv2", x)), 2)
            x = F.relu(fc("fc1", x.flatten(1)))
            x = F.relu(fc("fc2", x))
            return fc("fc3", x).numpy()
        x = F.relu(bn("bn1", conv("conv1", x, padding=1)))
        for block in description["blocks"]:
            pre, s = block["prefix"], block["stride"]
            y = F.relu(bn(f"{pre}.bn1", conv(f"{pre}.conv1", x, s, 1)))
            y = bn(f"{pre}.bn2", conv(f"{pre}.conv2", y, 1, 1))
            if block["downsample"]:
                x = bn(f"{pre}.downsample.1", conv(f"{pre}.downsample.0", x, s))
            x = F.relu(y + x)
        return fc("fc", x.mean(dim=(2, 3))).numpy()
