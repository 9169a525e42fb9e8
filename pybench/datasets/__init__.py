"""The framework-neutral dataset layer: every framework gets byte-identical arrays from here.

`load_dataset(spec)` returns a `Dataset` of uint8 (N, C, H, W) splits with int64 labels, the
train normalisation statistics and a fingerprint; `batch_order`/`balanced_order` are the only
source of sample order. Modules: `core` (records, pixel table, statistics, fingerprint, split),
`idx` and `mnist` (MNIST files, checksums, download), `digits`, `folder` (layouts: class
folders, pre-split folders, masks left out), `manifest` (zip/csv, official split lists,
patient-grouped splits), `npz` and `medmnist` (MedMNIST files, INFO's names and MD5s), `images`
(decode/resize/grayscale), `decode`
(parallel decoding into one array on disk), `cache` (memory-mapped entries), `order`, `augment` (per-epoch
augmentation drawn from the seed), `story` (what was done to the images, said), `unlabelled`
(folders to predict), `load` (spec resolution).
"""

from pybench.datasets.augment import AUGMENTATIONS, augmented_train
from pybench.datasets.core import LAYOUTS, Dataset, Provenance, Split, data_root
from pybench.datasets.load import DATASETS, load_dataset
from pybench.datasets.order import balanced_order, batch_order
from pybench.datasets.story import describe_dataset

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "Dataset",
    "LAYOUTS",
    "Provenance",
    "Split",
    "augmented_train",
    "balanced_order",
    "batch_order",
    "data_root",
    "describe_dataset",
    "load_dataset",
]
