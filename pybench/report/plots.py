"""PNG figures of a comparison run: confusion matrices, ROC curves, training curves, step times.

Figures are built with matplotlib's object API (`Figure`, no pyplot), so nothing here touches
global backend state or opens a window; saving a PNG uses the Agg renderer on any machine.
Each function takes already-computed data and a path, and returns the path it wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import ScalarFormatter

from pybench.errors import writing
from pybench.report.metrics import RocCurve

# One colour per framework in every figure, so a reader learns them once.
FRAMEWORK_COLORS = {"torch": "tab:red", "jax": "tab:blue", "knet": "tab:green"}
OTHER_COLORS = ["tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
DPI = 120
LOG_SCALE_RATIO = 3  # step-time medians this far apart get a log axis, or the fast box is flat
WHISKERS = (1, 99)  # percentiles: a rare garbage-collection pause must not set the axis
LOSS_SMOOTHING_STEPS = 20  # rolling mean window; the raw losses are drawn faintly underneath
ANNOTATE_MAX_CLASSES = 12  # beyond this, counts in cells become unreadable


def color(framework: str, position: int) -> str:
    return FRAMEWORK_COLORS.get(framework, OTHER_COLORS[position % len(OTHER_COLORS)])


MARKERS = "osD^v"  # a marker shape per framework: identical points stay told apart


def same_as(run: dict, earlier: list[dict], key: str) -> str:
    """" (identical to torch)" when an earlier framework's `key` series is the very same: said in
    the legend, as the lines are drawn over each other."""
    values = run.get(key) or []
    twin = next((r["framework"] for r in earlier if values and (r.get(key) or []) == values), None)
    return f" (identical to {twin})" if twin else ""


def overlay_style(position: int) -> dict:
    """How the `position`-th framework's line is drawn where lines can coincide (two frameworks
    that computed the same thing give the very same curve): the first wide and solid, each later
    one narrower and dashed, so a line drawn over an identical one leaves it visible."""
    if position == 0:
        return {"linewidth": 3.0, "alpha": 0.55}
    return {"linewidth": max(1.0, 2.2 - 0.5 * (position - 1)), "linestyle": (0, (5 + 2 * position, 2 + position))}


def save(figure: Figure, path: Path) -> Path:
    # No metadata: the same results give byte-identical PNGs across runs of the report.
    with writing(path):
        figure.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def confusion_grid(confusions: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """One heatmap per framework, side by side, counts written in the cells."""
    n = len(confusions)
    figure = Figure(figsize=(4.2 * n, 4.0), layout="constrained")
    axes = figure.subplots(1, n, squeeze=False)[0]
    for ax, (framework, matrix) in zip(axes, confusions.items()):
        draw_confusion(ax, matrix)
        ax.set_title(framework)
    figure.suptitle(title)
    return save(figure, path)


def draw_confusion(ax, matrix: pd.DataFrame) -> None:
    counts = matrix.to_numpy()
    ax.imshow(counts, cmap="Blues")
    ticks = np.arange(len(matrix))
    ax.set_xticks(ticks, labels=matrix.columns, rotation=45 if len(ticks) > 4 else 0, ha="right")
    ax.set_yticks(ticks, labels=matrix.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(ticks) <= ANNOTATE_MAX_CLASSES:
        threshold = counts.max() / 2 if counts.size else 0
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > threshold else "black")


def class_palette(n: int) -> list:
    """A distinct colour per class: matplotlib's ten cycle colours, tab20's twenty beyond ten
    (NIH's 14 findings and their groups), repeating only past twenty."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    colours = matplotlib.colormaps["tab20"].colors
    return [colours[i % len(colours)] for i in range(n)]


def tsne_panels(maps: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str],
                title: str, path: Path, train_maps: dict[str, np.ndarray] | None = None,
                train_labels: np.ndarray | None = None) -> Path:
    """One t-SNE map per framework, side by side: the same test images in every panel, each
    point coloured by its true class (`maps`: framework -> (n, 2) coordinates); with
    `train_maps`, a first row of the training images' maps above the test row."""
    rows = ([("train", train_maps, train_labels)] if train_maps else []) + [("test", maps, labels)]
    n = len(maps)
    figure = Figure(figsize=(4.2 * n + 1.6, 4.2 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), n, squeeze=False)
    palette = class_palette(len(class_names))
    for axes, (split, split_maps, split_labels) in zip(grid, rows):
        for ax, (framework, points) in zip(axes, split_maps.items()):
            for index, name in enumerate(class_names):
                chosen = split_labels[:len(points)] == index
                if chosen.any():
                    ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=palette[index],
                               label=name, alpha=0.8, linewidths=0)
            ax.set_title(f"{framework}: {split} images" if len(rows) > 1 else framework)
            ax.set_xticks([])
            ax.set_yticks([])
    shown = {}  # every class drawn in any panel, in class order
    for ax in grid.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(name, handle)
    names = [name for name in class_names if name in shown]
    figure.legend([shown[name] for name in names], names, loc="outside right center",
                  markerscale=2.5, fontsize="small")
    figure.suptitle(title)
    return save(figure, path)


def example_grid(images: np.ndarray, truth: np.ndarray, predicted: dict[str, np.ndarray],
                 class_names: list[str], title: str, path: Path) -> Path:
    """Test images in a grid, a row per true class: under each, every framework's predicted
    class, in red (and the image framed in red) where it is wrong."""
    rows = [np.flatnonzero(truth == k) for k in range(len(class_names))]
    rows = [(k, r) for k, r in enumerate(rows) if len(r)]
    columns = max(len(r) for _, r in rows)
    lines = len(predicted)
    figure = Figure(figsize=(max(1.9 * columns + 1.4, 6.0), (1.9 + 0.17 * lines) * len(rows)),
                    layout="constrained")
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for axes, (k, chosen) in zip(grid, rows):
        axes[0].set_ylabel(class_names[k], fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        for ax, i in zip(axes, chosen):
            image = images[i]
            shown = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            ax.imshow(shown, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255)
            wrong = [fw for fw, p in predicted.items() if p[i] != k]
            ax.set_frame_on(True)
            for spine in ax.spines.values():
                spine.set_color("red" if wrong else "0.7")
                spine.set_linewidth(2.5 if wrong else 0.8)
            for line, (framework, p) in enumerate(predicted.items()):
                ax.text(0.5, -0.06 - 0.16 * line, f"{framework}: {class_names[p[i]]}",
                        transform=ax.transAxes, ha="center", va="top", fontsize=7,
                        color="red" if p[i] != k else "black")
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def disputed_grid(images: np.ndarray, disputed: list[dict], frameworks: list[str], title: str,
                  path: Path) -> Path:
    """The test images the frameworks disagree on most, one per cell (`images` in the order of
    `disputed`): above each, its true class and each framework's predictions over its seeds."""
    longest = max(len(f"{framework}: {row[framework]}") for row in disputed for framework in frameworks)
    width = max(1.9, 0.065 * longest)  # inches a cell needs for its longest line at 7 pt
    columns = max(1, min(6, len(disputed), int(11 // width)))
    rows = -(-len(disputed) // columns)
    figure = Figure(figsize=(width * columns + 0.4, (2.0 + 0.17 * len(frameworks)) * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for ax in grid.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for ax, image, row in zip(grid.flat, images, disputed):
        shown = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        ax.imshow(shown, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=255)
        # In the title, where the constrained layout makes room for every line.
        ax.set_title("\n".join([f"#{row['index']} true {row['true']}",
                                *(f"{framework}: {row[framework]}" for framework in frameworks)]), fontsize=7)
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def roc_plot(curves_by_framework: dict[str, dict[str, RocCurve]], title: str, path: Path) -> Path:
    """One panel per positive class (one panel when binary), one line per framework."""
    classes = list(dict.fromkeys(c for curves in curves_by_framework.values() for c in curves))
    columns = min(len(classes), 5)
    rows = math.ceil(len(classes) / columns)
    figure = Figure(figsize=(3.4 * columns, 3.3 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, classes):
        for position, (framework, curves) in enumerate(curves_by_framework.items()):
            if name in curves:
                curve = curves[name]
                ax.plot(curve.fpr, curve.tpr, color=color(framework, position),
                        label=f"{framework} (AUC {curve.auc:.3f})", **overlay_style(position))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.set(title=f"positive: {name}", xlabel="false positive rate", ylabel="true positive rate",
               xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right", fontsize=7)
    for ax in axes[len(classes):]:
        ax.set_visible(False)
    figure.suptitle(title)
    return save(figure, path)


def training_curves(runs: list[dict], title: str, path: Path) -> Path:
    """Loss per step (raw and smoothed), test/val accuracy per epoch, and, when it moved, the
    learning rate per step: one line per framework."""
    scheduled = any(len(set(run.get("learning_rates") or [])) > 1 for run in runs)
    figure = Figure(figsize=(14 if scheduled else 10, 3.8), layout="constrained")
    axes = figure.subplots(1, 3 if scheduled else 2)
    loss_ax, accuracy_ax = axes[:2]
    for position, run in enumerate(runs):
        c = color(run["framework"], position)
        losses = pd.Series(run.get("losses") or [], dtype=float)
        if len(losses):
            steps = np.arange(1, len(losses) + 1)
            loss_ax.plot(steps, losses, color=c, alpha=0.25, linewidth=0.6, label="_raw")
            smooth = losses.rolling(LOSS_SMOOTHING_STEPS, min_periods=1).mean()
            loss_ax.plot(steps, smooth, color=c, label=run["framework"] + same_as(run, runs[:position], "losses"),
                         **overlay_style(position))
        marker = MARKERS[position % len(MARKERS)]
        epoch_accuracy = run.get("epoch_accuracy") or []
        if epoch_accuracy:
            epochs = np.arange(1, len(epoch_accuracy) + 1)
            accuracy_ax.plot(epochs, 100 * np.asarray(epoch_accuracy, dtype=float), marker=marker,
                             markersize=7 - 1.5 * position, color=c,
                             label=f"{run['framework']} test" + same_as(run, runs[:position], "epoch_accuracy"),
                             **overlay_style(position))
        val_accuracy = run.get("epoch_val_accuracy") or []
        if val_accuracy:  # dotted: the split that selects the kept epoch (ringed)
            epochs = np.arange(1, len(val_accuracy) + 1)
            accuracy_ax.plot(epochs, 100 * np.asarray(val_accuracy, dtype=float), marker=marker,
                             markersize=7 - 1.5 * position, linestyle=(position, (1, 2)), color=c,
                             label=f"{run['framework']} validation"
                             + same_as(run, runs[:position], "epoch_val_accuracy"))
            kept = run.get("kept_epoch")
            if kept and kept <= len(val_accuracy):
                accuracy_ax.plot([kept], [100 * val_accuracy[kept - 1]], marker="o", markersize=12,
                                 markerfacecolor="none", color=c)
        if scheduled and run.get("learning_rates"):
            rates = np.asarray(run["learning_rates"], dtype=float)
            # Identical curves would hide each other: dashes of different lengths show them all.
            axes[2].plot(np.arange(1, len(rates) + 1), rates, color=c, label=run["framework"],
                         linestyle=(position * 2, (6, 2 + 2 * position)))
    loss_ax.set(title=f"training loss ({LOSS_SMOOTHING_STEPS}-step mean)", xlabel="step",
                ylabel="loss")
    validated = any(run.get("epoch_val_accuracy") for run in runs)
    accuracy_ax.set(title="accuracy per epoch" + (" (ringed: kept epoch)" if validated else ""),
                    xlabel="epoch", ylabel="accuracy (%)")
    epochs_run = max((len(run.get("epoch_accuracy") or []) for run in runs), default=0)
    if epochs_run:  # whole epochs only, with room around a single one
        accuracy_ax.set_xlim(0.5, epochs_run + 0.5)
    accuracy_ax.xaxis.get_major_locator().set_params(integer=True)
    if scheduled:
        axes[2].set(title="learning rate", xlabel="step", ylabel="learning rate")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    figure.suptitle(title)
    return save(figure, path)


TRAIN_TEST_LOSSES = (("epoch_train_loss", "train loss", "-"), ("epoch_test_loss", "test loss", "--"),
                     ("epoch_val_loss", "validation loss", ":"))
TRAIN_TEST_ACCURACIES = (("epoch_train_accuracy", "train accuracy (right axis)", "-"),
                         ("epoch_accuracy", "test accuracy (right axis)", "-."),
                         ("epoch_val_accuracy", "validation accuracy (right axis)", (0, (1, 3))))


def train_test_panels(runs: list[dict], title: str, path: Path) -> Path:
    """One panel per framework: the training loss per epoch (the mean over the epoch's training
    batches) against the test (and validation) loss, on the same formula, and the training
    against the test (and validation) accuracy on a second axis (grey): where test loss turns up
    while training loss goes on down, the model has begun to overfit. One legend for all panels,
    below them: inside a panel it would sit on one of its two axes' curves."""
    figure = Figure(figsize=(4.2 * len(runs), 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(runs), squeeze=False)[0])
    drawn: dict[str, Line2D] = {}
    for position, (ax, run) in enumerate(zip(axes, runs)):
        c = color(run["framework"], position)
        for key, label, style in TRAIN_TEST_LOSSES:
            values = np.asarray(run.get(key) or [], dtype=float)
            if len(values):
                ax.plot(np.arange(1, len(values) + 1), values, linestyle=style, marker="o",
                        markersize=3, color=c, label=label)
                drawn[label] = Line2D([], [], linestyle=style, marker="o", markersize=3, color="black")
        accuracy_ax = ax.twinx()
        for key, label, style in TRAIN_TEST_ACCURACIES:
            values = np.asarray(run.get(key) or [], dtype=float)
            if len(values):
                accuracy_ax.plot(np.arange(1, len(values) + 1), 100 * values, linestyle=style,
                                 color="0.4", label=label)
                drawn[label] = Line2D([], [], linestyle=style, color="0.4")
        ax.set(title=f"{run['framework']} (losses in its colour)", xlabel="epoch", ylabel="loss")
        accuracy_ax.set_ylabel("accuracy (%)")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if drawn:
        figure.legend(list(drawn.values()), list(drawn), loc="outside lower center", ncols=3, fontsize=7,
                      handlelength=3.5)
    figure.suptitle(title)
    return save(figure, path)


def step_time_box(step_times: dict[str, np.ndarray], title: str, path: Path,
                  busy: set[str] | frozenset = frozenset()) -> Path:
    """Distribution of step times per run (a box per framework, or with several seeds or repeats
    per framework and seed), warm-up step already removed by the caller: boxes of the quartiles,
    whiskers at the WHISKERS percentiles, each median written above its box. A run measured on a
    busy machine (`busy`, by label) is hatched and marked: it decides nothing about speed. Steps
    beyond the whiskers are counted in the caption, not drawn: one 300 ms pause among 2,000 steps
    of 3 ms would otherwise squash every box into a line."""
    labels = list(step_times)
    figure = Figure(figsize=(max(1.05 * len(labels) + 2.5, 4.5), 4.2), layout="constrained")
    ax = figure.subplots()
    samples = [np.asarray(t, dtype=float) for t in step_times.values()]
    frameworks = list(dict.fromkeys(label.split("\n")[0] for label in labels))
    boxes = ax.boxplot(samples, tick_labels=[label + ("\n(busy)" if label in busy else "") for label in labels],
                       patch_artist=True, showfliers=False, whis=WHISKERS, medianprops={"color": "black"})
    for patch, label in zip(boxes["boxes"], labels):
        framework = label.split("\n")[0]
        patch.set_facecolor(color(framework, frameworks.index(framework)))
        patch.set_alpha(0.5)
        if label in busy:
            patch.set_hatch("//")
    medians = [float(np.median(t)) for t in samples]
    for position, (sample, median) in enumerate(zip(samples, medians), start=1):
        top = float(np.percentile(sample, WHISKERS[1]))
        ax.annotate(f"{median:.3g}", (position, top), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7)
    beyond = sum(int(np.sum((t < np.percentile(t, WHISKERS[0])) |
                            (t > np.percentile(t, WHISKERS[1])))) for t in samples)
    per = "run" if len(labels) > len(frameworks) else "framework"
    ax.set(title=title, ylabel="step time (ms)",
           xlabel=f"a box per {per}: quartiles, line: median (written above, ms), whiskers: {WHISKERS[0]}st-"
                  f"{WHISKERS[1]}th percentile ({beyond} steps beyond them not drawn)")
    ax.xaxis.label.set_fontsize(8)
    ax.tick_params(axis="x", labelsize=8)
    if min(medians) > 0 and max(medians) / min(medians) > LOG_SCALE_RATIO:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # "20" reads better than "2×10^1"
        ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.margins(y=0.12)
    return save(figure, path)
