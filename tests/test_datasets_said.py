"""Nothing unsaid: every change made to the images is said (non-square images cropped, squashed or
letterboxed, gray images repeated, modes mixed, gray saved as colour), a split too small to train
on is refused before any worker starts, a run that trained nothing is never `ok`, an unlabelled
`test/` folder is recognised and predicted, and a results folder is readable by everyone the
umask lets read it. Each on folders the test builds (the five folder shapes of issue 44)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from PIL import Image, ImageOps

from pybench.datasets import load_dataset
from pybench.datasets.story import summary_lines
from pybench.errors import PybenchError
from pybench.report.headline import headline_lines
from pybench.run import worker

pytestmark = pytest.mark.usefixtures("isolated_cache")


def pattern(width: int, height: int, seed: int) -> np.ndarray:
    """A gray image with structure in both directions (a crop and a squash differ visibly)."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return ((x * 7 + y * 3 + rng.integers(0, 40, (height, width))) % 256).astype(np.uint8)


def oblong_folder(root, count: int = 6):
    """Two classes of 40x30 and 30x40 gray PNGs."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(count):
            size = (40, 30) if i % 2 else (30, 40)
            Image.fromarray(pattern(*size, seed=i + (label == "b") * 100)).save(root / label / f"{i}.png")
    return root


def centre_crop(image: Image.Image, s: int) -> Image.Image:
    """torchvision's Resize(s) then CenterCrop(s), in PIL: the shorter side to s, the middle kept."""
    width, height = round(image.width * s / min(image.size)), round(image.height * s / min(image.size))
    left, top = (width - s) // 2, (height - s) // 2
    return image.resize((width, height), Image.BILINEAR).crop((left, top, left + s, top + s))


@pytest.mark.parametrize("resize, reference", [
    ("crop", centre_crop),
    ("squash", lambda image, s: image.resize((s, s), Image.BILINEAR)),
    ("pad", lambda image, s: ImageOps.pad(image, (s, s), Image.BILINEAR, color=0)),
])
def test_non_square_images_become_square_the_way_resize_says_with_pils_pixels(tmp_path, resize, reference):
    root = oblong_folder(tmp_path / "oblong")
    ds = load_dataset(str(root), image_size=16, resize=resize, test_fraction=0.5, cache=False, progress=False)
    for split in (ds.train, ds.test):
        for image, name in zip(split.images, split.names):
            expected = np.asarray(reference(Image.open(root / name), 16))
            assert np.array_equal(image[0], expected), (resize, name)
    said = "\n".join(ds.provenance.lines())
    word = {"crop": "centre-cropped to 16x16 (--resize crop, the default)", "squash": "squashed to 16x16",
            "pad": "letterboxed to 16x16"}[resize]
    assert word in said and "12 non-square images (30x40: 6, 40x30: 6)" in said, said
    if resize == "crop":
        assert "25% of the longer side cut away" in said
    if resize == "pad":
        assert "25% of each such image is padding" in said


def test_the_size_error_names_image_size_and_the_resize_choices(tmp_path):
    root = oblong_folder(tmp_path / "oblong")
    with pytest.raises(PybenchError, match=r"pass --image-size S to make them all S x S \(--resize crop"):
        load_dataset(str(root), cache=False, progress=False)


def test_gray_images_saved_as_rgb_suggest_grayscale_with_the_memory_it_saves(tmp_path):
    root = tmp_path / "xrays"
    for label in ("normal", "covid"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(pattern(20, 20, i + len(label))).convert("RGB").save(root / label / f"{i}.png")
    ds = load_dataset(str(root), test_fraction=0.2, cache=False, progress=False)
    assert ds.in_shape == (3, 20, 20)
    said = "\n".join(ds.provenance.lines())
    assert ("every image is gray (10 stored as colour with R = G = B): --grayscale reads them as one channel, "
            "4.0 kB instead of 12.0 kB") in said, said
    gray = load_dataset(str(root), test_fraction=0.2, grayscale=True, cache=False, progress=False)
    assert gray.in_shape == (1, 20, 20) and "--grayscale reads them" not in "\n".join(gray.provenance.lines())


def test_mixed_modes_say_what_became_of_each(tmp_path):
    root = tmp_path / "mixed"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        base = pattern(12, 12, len(label))
        Image.fromarray(base).save(root / label / "gray.png")
        Image.fromarray(base).convert("LA").save(root / label / "alpha.png")
        Image.fromarray(base).convert("P").save(root / label / "palette.png")
        Image.fromarray(np.stack([base, base[::-1], base.T], axis=-1)).save(root / label / "colour.png")
        Image.fromarray(np.stack([base] * 3, axis=-1)).save(root / label / "photo.jpg")
        Image.fromarray(base.astype(np.uint16) * 257).save(root / label / "wide.png")
    ds = load_dataset(str(root), test_fraction=0.5, cache=False, progress=False)
    said = ds.provenance.lines()
    assert ds.in_shape == (3, 12, 12)
    assert "mixed image modes: " in said[3] and "LA: 2" in said[3] and "file types: PNG: 10, JPEG: 2" in said[3]
    assert "gray images repeated to three channels: 6 of 12 images (the set holds colour images)" in said
    assert "alpha channel dropped: 2 images (LA)" in said
    assert "palette expanded to RGB: 2 images (P)" in said
    assert any(line.startswith("16-bit (or wider) values scaled to 8 bits: 2 images") for line in said)
    # The colour images are not gray: no --grayscale suggestion.
    assert not any("--grayscale reads them" in line for line in said)


def kaggle_folder(root, per_class: int = 12, unlabelled: int = 8):
    """train/<class>/*.png beside a flat, unlabelled test/*.png."""
    for k, label in enumerate(("covid", "normal")):
        (root / "train" / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(pattern(12, 12, 10 * k + i)).save(root / "train" / label / f"{i}.png")
    (root / "test").mkdir()
    for i in range(unlabelled):
        Image.fromarray(pattern(12, 12, 500 + i)).save(root / "test" / f"img{i:03d}.png")
    return root


def test_a_flat_unlabelled_test_folder_is_said_and_the_test_split_carved_from_train(tmp_path):
    root = kaggle_folder(tmp_path / "kaggle")
    ds = load_dataset(str(root), test_fraction=0.25, cache=False, progress=False)
    assert ds.classes == ["covid", "normal"] and len(ds.train) == 18 and len(ds.test) == 6
    assert all(name.startswith("train/") for name in ds.test.names)  # carved from train/, not test/
    said = ds.provenance.lines()
    assert "test/: 8 unlabelled images (no class folders): not trained or evaluated on; every run predicts them " \
           "(predictions-<run>.csv; --predict DIR for another folder)" in said
    assert "  test: 0.25 of train/, stratified, split seed 0" in said


def test_run_lines_say_the_partial_batch_and_the_kept_epoch():
    summary = {"train_size": 1437, "val_size": 0, "provenance": {"layout": "arrays"}}
    lines = summary_lines(summary, {"batch_size": 32, "epochs": 3})
    assert ("each epoch trains 44 full batches of 32: the last 29 of the 1,437 training images (a different 29 each "
            "epoch, as the order is reshuffled) wait for the next epoch, the same in every framework") in lines
    assert any(line.startswith("no validation split: the last epoch's weights are kept") for line in lines)
    with_val = summary_lines({**summary, "val_size": 100}, {"batch_size": 479, "epochs": 3})
    assert "the epoch with the best validation score is kept: its weights give the test figures" in with_val
    assert not any("full batches" in line for line in with_val)  # 1437 = 3 x 479: nothing dropped


def test_a_train_split_smaller_than_the_batch_exits_before_training(tmp_path, cli_error):
    root = tmp_path / "small"
    for split, count in (("train", 8), ("test", 4)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(pattern(8, 8, i)).save(root / split / label / f"{i}.png")
    out = tmp_path / "out"
    line = cli_error("compare", str(root), "--frameworks", "torch", "--out", str(out),
                     fragments=("the train split has 16 images, fewer than one batch of 32",
                                "pass --batch-size 16 or less"))
    assert str(root) in line
    assert not out.exists()  # refused before anything was written or any worker started
    cli_error("parity", "--dataset", str(root), "--frameworks", "torch", "--models", "lenet5", "--out", str(out),
              "--steps", "3", "--batch-size", "8",
              fragments=("fewer than --steps 3 x --batch-size 8 = 24", "pass --batch-size 4 or less"))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'dataset = "{root}"\nframeworks = ["torch"]\nbatch_size = [8, 64]\n')
    cli_error("sweep", str(sweep), "--out", str(out), fragments=("fewer than one batch of 64",))


def test_one_class_in_train_is_refused(tmp_path, cli_error):
    rng = np.random.default_rng(0)
    path = tmp_path / "one.npz"
    np.savez(path, train_images=rng.integers(0, 256, (8, 8, 8), dtype=np.uint8), train_labels=np.zeros(8, np.int64),
             test_images=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8), test_labels=np.array([0, 1, 0, 1]))
    cli_error("compare", str(path), "--frameworks", "torch", "--batch-size", "2", "--out", str(tmp_path / "o"),
              fragments=("the train split holds one class (0, 8 images)",))


def test_a_job_that_trained_nothing_is_recorded_failed_never_ok(monkeypatch):
    finished = {"steps": 0, "test_accuracy": None}
    monkeypatch.setattr(worker, "job_function", lambda kind: lambda job: dict(finished))
    record = worker.run_job({"kind": "train", "framework": "torch", "model": "lenet5"})
    assert record["status"] == "failed" and record["reason"].startswith("trained 0 steps")
    finished.update(steps=3)
    record = worker.run_job({"kind": "train", "framework": "torch", "model": "lenet5"})
    assert record["status"] == "failed" and record["reason"].startswith("no test figure")
    finished.update(test_accuracy=0.5)
    assert worker.run_job({"kind": "train", "framework": "torch", "model": "lenet5"})["status"] == "ok"


def test_the_training_loop_refuses_a_split_with_no_full_batch(tmp_path):
    from pybench.backends import get_backend
    from pybench.config import TrainConfig
    from pybench.datasets.core import Split, build_dataset
    from pybench.training import train_and_evaluate

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (8, 1, 28, 28), dtype=np.uint8), np.arange(8) % 2)
    ds = build_dataset("tiny", "test", ["a", "b"], split, split)
    with pytest.raises(PybenchError, match="give no full batch of 32: nothing to train"):
        train_and_evaluate(get_backend("torch", "cpu"), ds, TrainConfig(batch_size=32))


def test_the_headline_names_the_runs_that_did_not_finish():
    runs = [{"framework": "torch", "model": "lenet5", "status": "failed", "reason": "trained 0 steps: x"},
            {"framework": "jax", "model": "lenet5", "status": "failed", "reason": "trained 0 steps: x"}]
    (line,) = headline_lines({"runs": runs})
    assert line == "- **lenet5**: no run finished. Did not finish: failed: torch, jax (trained 0 steps: x)."


def test_results_files_are_created_with_the_umasks_mode(tmp_path):
    from pybench.results import FILE_MODE, write_npz, write_results

    assert FILE_MODE == 0o666 & ~(os.umask(os.umask(0o022)))
    write_results(tmp_path, {"runs": []})
    write_npz(tmp_path / "predictions" / "a.npz", x=np.zeros(2))
    for path in (tmp_path / "results.json", tmp_path / "runs.csv", tmp_path / "predictions" / "a.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE, path


@pytest.mark.slow
def test_predict_writes_the_kaggle_csv_in_torch_and_jax_with_their_agreement(tmp_path, run_cli):
    root = kaggle_folder(tmp_path / "kaggle", per_class=20)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        result = run_cli("compare", root, "--frameworks", "torch,jax", "--batch-size", "8", "--max-steps", "3",
                         "--out", out, "--no-report")
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test/: 8 unlabelled images" in result.stderr  # the console's data header
    document = json.loads((out / "results.json").read_text())
    assert document["predict"]["images"] == 8 and document["predict"]["from"] == "the dataset's unlabelled test/"
    (pair,) = document["predict"]["agreement"]
    assert (pair["a"], pair["b"], pair["images"]) == ("torch", "jax", 8)
    assert f"torch and jax gave the same label to {pair['same']} of 8 images" in result.stdout
    import pandas as pd

    for framework in ("torch", "jax"):
        frame = pd.read_csv(out / f"predictions-{framework}-lenet5.csv")
        assert list(frame.columns) == ["filename", "label", "p_covid", "p_normal"]
        assert frame["filename"].tolist() == [f"img{i:03d}.png" for i in range(8)]
        assert np.allclose(frame[["p_covid", "p_normal"]].sum(axis=1), 1, atol=1e-5)
        test = pd.read_csv(out / "predictions" / f"{framework}-lenet5.csv")
        assert list(test.columns[:3]) == ["filename", "true_label", "label"] and len(test) == 8
    assert any("test/: 8 unlabelled images" in note for note in document["dataset"]["notes"])
    for path in out.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # group and others may read
