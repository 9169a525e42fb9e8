"""A folder of images without labels, to predict (`--predict DIR`, or a flat `test/` beside
`train/` class folders, as Kaggle competitions ship it).

The images are decoded with the dataset's own options (size, `--resize`, grayscale) and made to
the training images' channels, so that every framework's model sees them exactly as it saw its
test images; anything that cannot match (a size without `--image-size`, no images at all) is one
line before any worker starts. Each worker decodes the folder again (the same bytes: decoding is
deterministic), predicts it with its final model, and writes the Kaggle submission form
(`prediction_frame`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pybench.datasets.cache import ArrayStore
from pybench.datasets.decode import FileReader, check_workers, decode_splits
from pybench.datasets.folder import is_hidden, is_mask
from pybench.datasets.images import SIZE_FIX, is_image_name
from pybench.datasets.story import DEFAULT_RESIZE
from pybench.errors import PybenchError


@dataclass(frozen=True)
class Unlabelled:
    """uint8 (N, C, H, W) images and their file names relative to the folder, in name order."""

    folder: str
    images: np.ndarray
    names: list[str]
    changes: dict  # what decoding did to them (`story.Tally.to_dict`)


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder` (sub-folders too), masks and hidden files aside, in name order."""
    if not folder.is_dir():
        raise PybenchError(f"--predict {folder}: not a folder of images")
    found = [path for path in sorted(folder.rglob("*"))
             if path.is_file() and is_image_name(path.name) and not is_mask(path.relative_to(folder))
             and not any(is_hidden(Path(part)) for part in path.relative_to(folder).parts)]
    if not found:
        raise PybenchError(f"--predict {folder}: no images (.png, .jpg, .jpeg, .bmp) in it")
    return found


def load_unlabelled(folder: str | Path, in_shape: tuple[int, int, int], image_size: int | None = None,
                    grayscale: bool = False, resize: str = DEFAULT_RESIZE, workers: int | None = None,
                    **_other_options) -> Unlabelled:
    """The folder's images as the model takes them: `in_shape` (C, H, W) is the training
    images'. One channel when training had one (colour images converted, as --grayscale does);
    gray images repeated to three when training had three. The other load options (splits,
    manifests) do not apply to a folder without labels and are ignored."""
    folder = Path(folder).expanduser().resolve()
    files = image_files(folder)
    store = ArrayStore(Path(tempfile.mkdtemp(prefix="pybench-predict-")))
    try:
        decoded = decode_splits(store, {"predict": [str(path) for path in files]}, FileReader(), image_size,
                                grayscale or in_shape[0] == 1, check_workers(workers), False, resize=resize)
        images = np.array(decoded.images["predict"])  # read into memory: the store is removed below
    finally:
        store.discard()
    if images.shape[2:] != tuple(in_shape[1:]):
        raise PybenchError(f"--predict {folder}: its images are {images.shape[3]}x{images.shape[2]}, the training "
                           f"images {in_shape[2]}x{in_shape[1]}: {SIZE_FIX}")
    changes = dict(decoded.changes)
    if images.shape[1] != in_shape[0]:
        images = np.repeat(images, in_shape[0], axis=1)  # gray into a colour model: repeated, as in training
        changes["channels"] = in_shape[0]
    if in_shape[0] == 1 and not grayscale:
        changes["grayscale"] = True  # colour images converted for a one-channel model: said as --grayscale's
    return Unlabelled(str(folder), images, [str(path.relative_to(folder)) for path in files], changes)


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Softmax over classes, or a sigmoid per finding (multi-label), in float64."""
    x = np.asarray(logits, np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-x))
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predicted_labels(logits: np.ndarray, classes: list[str], multilabel: bool) -> list[str]:
    """Each image's predicted class name; multi-label: its findings at sigmoid >= 0.5 joined by
    "|" (NIH's own form), "No Finding" when none."""
    if not multilabel:
        return [classes[k] for k in np.argmax(logits, axis=1)]
    return ["|".join(c for c, on in zip(classes, row) if on) or "No Finding" for row in np.asarray(logits) >= 0]


def prediction_frame(names: list[str], logits: np.ndarray, classes: list[str], multilabel: bool,
                     true_labels: np.ndarray | None = None) -> pd.DataFrame:
    """The Kaggle submission form: `filename,label,p_<class>...` (with the labelled test split,
    `true_label` after the file name)."""
    frame = pd.DataFrame({"filename": names})
    if true_labels is not None:
        frame["true_label"] = (predicted_labels(np.where(true_labels > 0, 1.0, -1.0), classes, True) if multilabel
                               else [classes[k] for k in true_labels])
    frame["label"] = predicted_labels(logits, classes, multilabel)
    probs = probabilities(logits, multilabel)
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = np.round(probs[:, k], 6)
    return frame


def agreement(predicted: dict[str, list[str]]) -> list[dict]:
    """Every pair of runs' share of images given the same label: [{"a", "b", "same", "images"}]."""
    names = list(predicted)
    pairs = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            same = sum(x == y for x, y in zip(predicted[first], predicted[second]))
            pairs.append({"a": first, "b": second, "same": int(same), "images": len(predicted[first])})
    return pairs
