"""CSV manifests (NIH chest X-ray style) in a zip or beside a .csv: column defaults, the
binary-negative rule, multi-label errors, missing images, and fuzzing the manifest parser."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pybench.datasets import load_dataset
from pybench.datasets.manifest import encode_labels, parse_manifest
from pybench.errors import PybenchError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_zip_with_binary_negative(nih_zip):
    ds = load_dataset(str(nih_zip()), binary_negative="No Finding", test_fraction=0.25, cache=False)
    assert ds.classes == ["No Finding", "Finding"] and ds.name == "nih"
    assert ds.in_shape == (1, 32, 32) and len(ds.train) == 18 and len(ds.test) == 6
    all_labels = np.concatenate([ds.train.labels, ds.test.labels])
    assert np.bincount(all_labels).tolist() == [8, 16]  # "No Finding" is 4 of every 12 rows


def test_multi_label_cell_without_binary_negative_is_named(nih_zip):
    with pytest.raises(PybenchError, match=r"Data_Entry.csv: row 3 has the multi-label cell 'Effusion\|Infiltration'"
                                           r".*--binary-negative"):
        load_dataset(str(nih_zip()), cache=False)


def test_single_label_classes_are_sorted_strings(nih_zip):
    rows = [{"Image Index": f"{i}.png", "Finding Labels": ["Mass", "Effusion", "No Finding"][i % 3]}
            for i in range(12)]
    ds = load_dataset(str(nih_zip(rows)), test_fraction=0.25, cache=False)
    assert ds.classes == ["Effusion", "Mass", "No Finding"]
    assert np.bincount(np.concatenate([ds.train.labels, ds.test.labels])).tolist() == [4, 4, 4]


def test_explicit_columns_and_positional_defaults(nih_zip):
    rows = [{"file": f"{i}.png", "diagnosis": "sick" if i % 2 else "well"} for i in range(8)]
    ds = load_dataset(str(nih_zip(rows)), test_fraction=0.5, cache=False)  # first and second columns
    assert ds.classes == ["sick", "well"]
    ds = load_dataset(str(nih_zip(rows, name="b.zip")), image_col="file", label_col="diagnosis",
                      test_fraction=0.5, cache=False)
    assert ds.classes == ["sick", "well"]
    with pytest.raises(PybenchError, match="no label column 'Label'; columns present: file, diagnosis"):
        load_dataset(str(nih_zip(rows, name="c.zip")), label_col="Label", cache=False)


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def png_bytes(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), value).save(buffer, format="PNG")
    return buffer.getvalue()


def test_missing_image_names_manifest_row_and_image(tmp_path):
    manifest = "Image Index,Finding Labels\n0.png,A\nghost.png,B\n"
    path = write_zip(tmp_path / "ghost.zip", {"meta/Data_Entry.csv": manifest, "img/0.png": png_bytes(0)})
    with pytest.raises(PybenchError, match=r"ghost.zip:meta/Data_Entry.csv: row 2: image 'ghost.png' not found"):
        load_dataset(str(path), cache=False)


def test_manifest_choice_in_zip(nih_zip):
    rows = [{"Image Index": f"{i}.png", "Finding Labels": "A" if i % 2 else "B"} for i in range(8)]
    path = nih_zip(rows, extra={"other/BBox_List.csv": "Image Index,Finding Label\n"})
    with pytest.raises(PybenchError, match="pass --manifest NAME .*Data_Entry.csv, other/BBox_List.csv"):
        load_dataset(str(path), cache=False)
    ds = load_dataset(str(path), manifest="Data_Entry.csv", test_fraction=0.5, cache=False)
    assert ds.num_classes == 2
    with pytest.raises(PybenchError, match="manifest 'nope.csv' not found"):
        load_dataset(str(path), manifest="nope.csv", cache=False)


def test_ambiguous_basename_in_zip_is_named(nih_zip):
    rows = [{"Image Index": f"{i}.png", "Finding Labels": "A" if i % 2 else "B"} for i in range(8)]
    path = nih_zip(rows, extra={"elsewhere/3.png": png_bytes(1)})
    with pytest.raises(PybenchError, match="row 4: image '3.png' matches several files"):
        load_dataset(str(path), cache=False)


def test_undecodable_image_inside_zip_is_named(tmp_path):
    manifest = "Image Index,Finding Labels\n" + "".join(f"{i}.png,{'A' if i % 2 else 'B'}\n" for i in range(4))
    members = {"labels.csv": manifest, **{f"deep/er/{i}.png": png_bytes(i) for i in range(4)}}
    members["deep/er/2.png"] = b"garbage"
    # test_fraction 0.5: the split (made from the labels, before decoding) needs a test image per class.
    with pytest.raises(PybenchError, match=r"cannot decode image .*bad.zip:deep/er/2.png"):
        load_dataset(str(write_zip(tmp_path / "bad.zip", members)), test_fraction=0.5, cache=False)


def test_standalone_csv_finds_images_recursively(tmp_path):
    root = tmp_path / "xray"
    rng = np.random.default_rng(0)
    lines = ["Image Index,Finding Labels,Patient Age"]
    for i in range(10):
        folder = root / "images" / f"batch{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(folder / f"{i:04d}.png")
        lines.append(f"{i:04d}.png,{'No Finding' if i < 4 else 'Effusion|Mass'},{40 + i}")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(root / "Data_Entry_2017.csv"), binary_negative="No Finding", test_fraction=0.5, cache=False)
    assert ds.classes == ["No Finding", "Finding"] and ds.in_shape == (1, 12, 12)
    assert np.bincount(np.concatenate([ds.train.labels, ds.test.labels])).tolist() == [4, 6]


def test_binary_negative_must_exist():
    with pytest.raises(PybenchError, match="no row has the label 'Normal'"):
        encode_labels(["A", "B"], "m.csv", "Normal")


def test_parse_manifest_errors():
    with pytest.raises(PybenchError, match="empty manifest"):
        parse_manifest("\n\n", "m.csv")
    with pytest.raises(PybenchError, match="header but no rows"):
        parse_manifest("Image Index,Finding Labels\n", "m.csv")
    with pytest.raises(PybenchError, match="row 1 has 1 cells"):
        parse_manifest("a,b\nonly\n", "m.csv")
    with pytest.raises(PybenchError, match="needs an image and a label column"):
        parse_manifest("single\nx\n", "m.csv")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list('ab,|"\n\r \x00é') + ["Image Index", "Finding Labels"]), max_size=40)
       .map("".join), st.booleans())
def test_fuzz_manifest_parser(text, binary):
    try:
        rows = parse_manifest(text, "fuzz.csv")
        classes, labels = encode_labels(rows.labels, "fuzz.csv", rows.labels[0] if binary else None)
    except PybenchError:
        return
    assert len(rows.images) == len(rows.labels) == len(labels) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < len(classes)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_manifest_parser_any_text(text):
    try:
        rows = parse_manifest(text, "fuzz.csv")
    except PybenchError:
        return
    assert all(rows.images) and all(rows.labels)


@pytest.mark.parametrize("negative, positive", [
    ("No Finding", "Finding"), ("Normal", "Abnormal"), ("normal", "abnormal"),
    ("non tumour", "tumour"), ("healthy", "not healthy")])
def test_the_positive_class_is_named_as_a_reader_would(negative, positive):
    from pybench.datasets.manifest import positive_name
    assert positive_name(negative) == positive
