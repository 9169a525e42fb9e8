"""`--task multilabel`: NIH-style finding cells as (N, findings) targets, the binary
cross-entropy every framework trains on (PyTorch's BCEWithLogitsLoss, pybench.tasks), and the
mean per-finding AUC a run is scored by.

Each framework's loss is held to the formula, and its multi-label float64 trajectory to torch's,
by the conformance suite (tests/conformance.py, a worker process per framework: Julia must not
start inside pytest's process, whose children would inherit the signals its runtime blocks). The
proofs at full size are tests/test_parity.py (a float64 trajectory of the multi-label loss from
a weights file, frozen layers) and tests/test_pretrained.py (a compare on an NIH-layout zip).
"""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pybench import tasks
from pybench.datasets import load_dataset
from pybench.datasets.manifest import encode_findings
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def manifest_cells(archive) -> list[str]:
    with zipfile.ZipFile(archive) as bundle:
        rows = csv.DictReader(io.StringIO(bundle.read("Data_Entry_2017.csv").decode()))
        return [row["Finding Labels"] for row in rows]


def test_finding_cells_become_one_column_per_finding():
    findings, labels = encode_findings(["No Finding", "Effusion|Mass", "Mass", "Atelectasis|Effusion|Mass"],
                                       "m.csv")
    assert findings == ["Atelectasis", "Effusion", "Mass"]
    np.testing.assert_array_equal(labels, [[0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 1]])
    assert labels.dtype == np.int64


@pytest.mark.parametrize("cells, fragment", [
    (["No Finding|Mass", "Mass"], "row 1 has the finding cell 'No Finding|Mass'"),
    (["Mass", "Effusion||Mass"], "row 2 has the finding cell 'Effusion||Mass'"),
    (["No Finding", "No Finding"], "every row is 'No Finding'"),
])
def test_contradictory_or_empty_finding_cells_are_one_line_errors(cells, fragment):
    with pytest.raises(PybenchError, match=fragment.replace("|", r"\|")):
        encode_findings(cells, "m.csv")


def test_an_nih_zip_loads_every_finding_of_every_image(nih_release_zip):
    cells = manifest_cells(nih_release_zip)
    xrays = load_dataset(str(nih_release_zip), multilabel=True, image_size=16, progress=False)
    assert xrays.multilabel and xrays.classes == sorted({f for c in cells for f in c.split("|")} - {"No Finding"})
    labels = np.concatenate([xrays.train.labels, xrays.test.labels])
    assert labels.shape == (len(cells), len(xrays.classes)) and set(np.unique(labels)) == {0, 1}
    # Every finding's count, the No Finding rows and the multi-finding rows, as the manifest has them.
    for k, finding in enumerate(xrays.classes):
        assert labels[:, k].sum() == sum(finding in c.split("|") for c in cells)
    assert (labels.sum(axis=1) == 0).sum() == cells.count("No Finding")
    assert (labels.sum(axis=1) > 1).sum() == sum("|" in c for c in cells)
    # The patient-grouped split still holds, stratified by No Finding against the rest.
    assert xrays.groups["column"] == "Patient ID"
    train_share = (xrays.train.labels.sum(axis=1) == 0).mean()
    test_share = (xrays.test.labels.sum(axis=1) == 0).mean()
    assert abs(train_share - test_share) < 0.1
    # A second load reads the cache entry: the same (N, findings) labels.
    again = load_dataset(str(nih_release_zip), multilabel=True, image_size=16, progress=False)
    np.testing.assert_array_equal(again.train.labels, xrays.train.labels)
    assert again.fingerprint == xrays.fingerprint


def test_datasets_info_shows_the_counts_per_finding_and_the_multi_finding_images(run_cli, nih_release_zip):
    result = run_cli("datasets", "info", str(nih_release_zip), "--task", "multilabel", "--image-size", "16")
    assert result.returncode == 0, result.stderr
    xrays = load_dataset(str(nih_release_zip), multilabel=True, image_size=16, progress=False)
    assert "findings, multi-label (14)" in result.stdout
    per_finding = [line for line in result.stdout.splitlines() if "images per finding:" in line]
    assert len(per_finding) == 2  # train and test
    train = xrays.train.labels
    effusion = xrays.classes.index("Effusion")
    assert f"Effusion: {train[:, effusion].sum()}" in per_finding[0]
    assert (f"no finding: {(train.sum(axis=1) == 0).sum()}, several findings: "
            f"{(train.sum(axis=1) > 1).sum()}") in per_finding[0]


@pytest.mark.parametrize("args, fragment", [
    (("datasets", "info", "digits", "--task", "multilabel"), "--task multilabel needs a manifest"),
    (("compare", "digits", "--frameworks", "torch", "--pos-weight", "balanced"),
     "--pos-weight applies to --task multilabel"),
])
def test_options_that_do_not_fit_the_task_are_one_line_errors(cli_error, args, fragment):
    cli_error(*args, fragments=(fragment,))


@pytest.mark.parametrize("args, fragment", [
    (("--binary-negative", "No Finding"), "exclude each other"),
    (("--label-smoothing", "0.1"), "--label-smoothing applies to single-label"),
    (("--balance",), "use --pos-weight balanced"),
])
def test_single_label_options_with_multilabel_are_one_line_errors(cli_error, nih_release_zip, args, fragment):
    cli_error("compare", str(nih_release_zip), "--task", "multilabel", "--frameworks", "torch",
              "--image-size", "16", *args, fragments=(fragment,))


def test_balanced_weights_are_negatives_over_positives():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    assert tasks.balanced_pos_weight(labels) == (1 / 3, 3.0, 1.0)  # no positive: weight 1


def test_the_reference_loss_is_pytorchs_bce_with_logits():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 3, (16, 5)), rng.integers(0, 2, (16, 5))
    weight = rng.uniform(0.2, 5, 5)
    expected = F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(labels, dtype=torch.float64),
                                                  pos_weight=torch.tensor(weight))
    assert tasks.bce_with_logits(logits, labels, weight) == pytest.approx(float(expected), rel=1e-14)


def test_the_score_is_the_mean_auc_over_findings_with_both_outcomes():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (50, 4))
    labels[:, 3] = 0  # no positive: no AUC, left out of the mean
    logits = rng.normal(size=(50, 4)) + labels
    expected = np.mean([roc_auc_score(labels[:, k], logits[:, k]) for k in range(3)])
    assert tasks.score(logits, labels) == pytest.approx(expected)
    assert np.isnan(tasks.score(np.full((50, 4), np.nan), labels))
