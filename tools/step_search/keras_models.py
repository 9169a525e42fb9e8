"""The yardstick: Keras 3 on the same backend (JAX or PyTorch), the same model in its own
layers and `fit` loop, from the same weights; in a worker process of its own (Keras picks its
backend once)."""

from __future__ import annotations

import importlib
import importlib.util
import time

import numpy as np

from pybench import models
from step_search.common import BATCH, OPTIMIZER, Inputs, Round, Search, Variant

# Set in a round worker: serve Keras's rounds instead of the pybench backend's.
KERAS_ENV = "PYBENCH_BENCH_KERAS"

KERAS_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    framework: {f"pybench {framework} backend (default)": {},
                f"Keras 3 on {framework}, its own fit loop": {
                    "KERAS_BACKEND": framework, KERAS_ENV: "1"}}
    for framework in ("jax", "torch")}


# A widely used high-level library on the same backend, as its users run it: Keras 3 (on JAX or
# PyTorch, KERAS_BACKEND), the same model in its own layers (NHWC, HWIO kernels), its SGD and its
# own fit loop, from pybench's canonical weights (converted, so the first loss is the same) on
# the same batches. Optional (`pip install keras`).

def keras_lenet5(inputs: Inputs):
    """Keras LeNet-5 holding the canonical weights (conv kernels OIHW -> HWIO; fc1's inputs
    reordered from torch's (C, H, W) flatten to Keras' (H, W, C); dense kernels transposed)."""
    import keras

    p = inputs.params
    c, h, w = inputs.in_shape
    model = keras.Sequential([
        keras.Input((h, w, c)),
        keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="relu"),
        keras.layers.Dense(84, activation="relu"),
        keras.layers.Dense(inputs.num_classes),
    ])
    fc1 = p["fc1.weight"].reshape(120, 16, 5, 5).transpose(0, 2, 3, 1).reshape(120, -1)
    weights = [p["conv1.weight"].transpose(2, 3, 1, 0), p["conv1.bias"],
               p["conv2.weight"].transpose(2, 3, 1, 0), p["conv2.bias"],
               fc1.T, p["fc1.bias"], p["fc2.weight"].T, p["fc2.bias"],
               p["fc3.weight"].T, p["fc3.bias"]]
    model.set_weights([np.ascontiguousarray(w) for w in weights])
    return model


def keras_resnet(inputs: Inputs):
    """The same ResNet in Keras layers, holding the canonical weights. PyTorch pads a stride-2
    3x3 convolution by 1 on every side, while Keras' "same" pads an even input on the right and
    bottom only: those convolutions get an explicit ZeroPadding2D(1) and "valid"."""
    import keras
    from keras import layers

    kernels = {}

    def conv(x, name, width, kernel, stride, pad):
        if pad and stride > 1:
            x = layers.ZeroPadding2D(pad)(x)
        padding = "same" if pad and stride == 1 else "valid"
        kernels[name] = layers.Conv2D(width, kernel, stride, padding=padding, use_bias=False)
        return kernels[name](x)

    def norm(x, name):
        kernels[name] = layers.BatchNormalization(momentum=1 - models.BN_MOMENTUM,
                                                  epsilon=models.BN_EPS)
        return kernels[name](x)

    c, h, w = inputs.in_shape
    spec = models.RESNETS[inputs.model]
    inp = keras.Input((h, w, c))
    x = layers.ReLU()(norm(conv(inp, "conv1", spec.stem_width, 3, 1, 1), "bn1"))
    for block in models.resnet_blocks(spec):
        q = block.prefix
        y = layers.ReLU()(norm(conv(x, f"{q}.conv1", block.out_channels, 3, block.stride, 1),
                               f"{q}.bn1"))
        y = norm(conv(y, f"{q}.conv2", block.out_channels, 3, 1, 1), f"{q}.bn2")
        shortcut = x
        if block.has_downsample:
            shortcut = norm(conv(x, f"{q}.downsample.0", block.out_channels, 1, block.stride, 0),
                            f"{q}.downsample.1")
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    kernels["fc"] = layers.Dense(inputs.num_classes)
    model = keras.Model(inp, kernels["fc"](x))
    set_canonical_weights({layer: name for name, layer in kernels.items()}, inputs)
    return model


def keras_builds(model: str) -> bool:
    """Whether the yardstick has `model`: LeNet-5, the small-stem ResNets (keras_resnet) and
    DenseNet-121 (keras.applications')."""
    if model == "densenet121-imagenet":
        return True
    kind = models.family(model)
    return model == "lenet5" or (kind == models.RESNET and models.RESNETS[model].stem == models.SMALL_STEM
                                    and models.RESNETS[model].block == models.BASIC)


def keras_densenet121(inputs: Inputs):
    """keras.applications' DenseNet121 (no weights downloaded) holding the canonical weights,
    its BatchNorm constants set to PyTorch's (Keras' own are epsilon 1.001e-5, momentum 0.99)."""
    import keras

    c, h, w = inputs.in_shape
    model = keras.applications.DenseNet121(include_top=True, weights=None, input_shape=(h, w, c),
                                           classes=inputs.num_classes, classifier_activation=None)
    spec = models.DENSENETS[inputs.model]
    names = {"conv1_conv": "features.conv0", "conv1_bn": "features.norm0", "bn": "features.norm5",
             "predictions": "classifier"}
    for i, count in enumerate(spec.block_layers, start=1):
        for j in range(1, count + 1):
            ours = f"features.denseblock{i}.denselayer{j}"
            theirs = f"conv{i + 1}_block{j}"
            names.update({f"{theirs}_0_bn": f"{ours}.norm1", f"{theirs}_1_conv": f"{ours}.conv1",
                          f"{theirs}_1_bn": f"{ours}.norm2", f"{theirs}_2_conv": f"{ours}.conv2"})
        if i < len(spec.block_layers):
            names.update({f"pool{i + 1}_bn": f"features.transition{i}.norm",
                          f"pool{i + 1}_conv": f"features.transition{i}.conv"})
    set_canonical_weights({model.get_layer(k): name for k, name in names.items()}, inputs)
    return model


def set_canonical_weights(names: dict, inputs: Inputs) -> None:
    """Every Keras layer of `names` (layer -> pybench name) gets the canonical weights of its
    name (kernels HWIO, dense kernels transposed); BatchNorm layers PyTorch's epsilon and
    momentum."""
    from keras import layers

    p, b = inputs.params, inputs.buffers
    for layer, name in names.items():
        if isinstance(layer, layers.BatchNormalization):
            layer.epsilon, layer.momentum = models.BN_EPS, 1 - models.BN_MOMENTUM
            weights = [p[f"{name}.weight"], p[f"{name}.bias"], b[f"{name}.running_mean"],
                       b[f"{name}.running_var"]]
        elif isinstance(layer, layers.Dense):
            weights = [p[f"{name}.weight"].T, p[f"{name}.bias"]]
        else:
            weights = [p[f"{name}.weight"].transpose(2, 3, 1, 0)]
        layer.set_weights([np.ascontiguousarray(a) for a in weights])


def keras_variant(inputs: Inputs, search: Search) -> Variant:
    """Rounds of `model.fit` over the next steps' batches of the epoch (unshuffled: the order is
    pybench's), each step timed from one `on_train_batch_end` to the next, as `fit` runs them."""
    import keras

    build = {"lenet5": keras_lenet5, "densenet121-imagenet": keras_densenet121}.get(inputs.model, keras_resnet)
    model = build(inputs)
    model.compile(optimizer=keras.optimizers.SGD(OPTIMIZER.lr, momentum=OPTIMIZER.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.ascontiguousarray(inputs.images.transpose(0, 2, 3, 1))
    start = [0]

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.first_loss, self.last = [], None, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.times.append((now - self.last) * 1e3)
            self.last = now
            if self.first_loss is None:  # the running mean of one batch: that batch's loss
                self.first_loss = float(logs["loss"])

    def run() -> Round:
        idx = inputs.order[start[0] * BATCH:(start[0] + search.steps) * BATCH]
        start[0] += search.steps
        clock = StepClock()
        model.fit(images[idx], inputs.labels[idx], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=[clock])
        return Round(clock.times[1:], clock.times[0], clock.first_loss)

    return run


def keras_installed() -> bool:
    return importlib.util.find_spec("keras") is not None  # not imported: it picks its backend once
