"""Build an NIH ChestX-ray14-layout zip of N synthetic 512x512 grayscale PNGs, for scale tests.

The layout is the real release's: `images_001/images/00000001_000.png` (an 8-digit patient id,
the 3-digit follow-up number; 10,000 images per `images_NNN` folder, the first holding 4,999 as in
the release) and `Data_Entry_2017.csv` with NIH's header, its `A|B` multi-label `Finding Labels`
cells (about 54% `No Finding`, about 18% with several findings, as in the release), follow-up
numbers and patient ids (about 3.7 images per patient). The pixels are synthetic: a chest-like
gradient with two darker lung fields, per-image noise (so each PNG is about as large as a real
one), and for every image with a finding, a bright round "lesion" (so a binary No Finding /
Finding model has something real to learn). Everything is drawn from `--seed`.

With `--official-lists`, the archive also holds the release's official patient-wise split,
`train_val_list.txt` and `test_list.txt` (about 23% of the patients in test, as in the release),
which pybench uses by default.

Usage:
    python scripts/make_nih_zip.py OUT.zip --images 20000 [--workers 2] [--seed 0] [--official-lists]

The images are encoded by a pool of processes and written to the zip as they come, stored
(PNGs do not compress further), so memory stays flat whatever N.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np

FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
            "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening",
            "Pneumonia", "Pneumothorax")
# Relative frequency of each finding among findings (from the release's label counts).
FINDING_WEIGHTS = np.array([11559, 2776, 4667, 2303, 13317, 2516, 1686, 227, 19894, 5782, 6331,
                            3385, 1431, 5302], dtype=np.float64)
NO_FINDING_SHARE = 0.54
MULTI_SHARE_OF_FINDINGS = 0.39  # ~18% of all images carry several findings
SIZE = 512
PER_FOLDER = 10_000
FIRST_FOLDER = 4_999
HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
          "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
          "OriginalImagePixelSpacing[x", "y]", ""]
CHUNK = 64  # images per pool task
TEST_PATIENT_SHARE = 0.23  # the release's test_list.txt: 25,596 of 112,120 images, patient-wise


def folder_of(index: int) -> str:
    """`images_NNN` of the index-th image (0-based), 4,999 in the first folder, then 10,000."""
    if index < FIRST_FOLDER:
        return "images_001"
    return f"images_{2 + (index - FIRST_FOLDER) // PER_FOLDER:03d}"


def manifest_rows(n: int, seed: int) -> list[list[str]]:
    """NIH-style rows: patients with 1..10 follow-ups each, findings drawn at the release's rates."""
    rng = np.random.default_rng([seed, 0])
    rows, patient = [], 0
    weights = FINDING_WEIGHTS / FINDING_WEIGHTS.sum()
    while len(rows) < n:
        patient += 1
        visits = min(int(rng.geometric(1 / 3.7)), n - len(rows))
        age, gender = int(rng.integers(1, 95)), "MF"[int(rng.integers(0, 2))]
        for follow_up in range(visits):
            if rng.random() < NO_FINDING_SHARE:
                labels = "No Finding"
            else:
                count = 1 + (rng.random() < MULTI_SHARE_OF_FINDINGS) * int(rng.integers(1, 4))
                chosen = rng.choice(len(FINDINGS), size=count, replace=False, p=weights)
                labels = "|".join(sorted(FINDINGS[i] for i in chosen))
            rows.append([f"{patient:08d}_{follow_up:03d}.png", labels, str(follow_up),
                         str(patient), str(age), gender, "PA" if rng.random() < 0.6 else "AP",
                         "2500", "2048", "0.143", "0.143", ""])
    return rows


def chest_base() -> np.ndarray:
    """The shared background: bright mediastinum and ribs' haze, two darker elliptic lungs."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    image = 170 - 60 * ((x - 0.5) ** 2 + (y - 0.55) ** 2)
    for cx in (0.3, 0.7):
        lung = ((x - cx) / 0.17) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1
        image = np.where(lung, image - 90, image)
    return image


def render(index: int, has_finding: bool, seed: int, base: np.ndarray) -> bytes:
    from PIL import Image

    rng = np.random.default_rng([seed, 1, index])
    image = base + rng.normal(0, 6, base.shape).astype(np.float32)
    if has_finding:
        cy, cx = rng.uniform(0.3, 0.7, 2) * SIZE
        radius = rng.uniform(0.04, 0.09) * SIZE
        y, x = np.ogrid[0:SIZE, 0:SIZE]
        image = np.where((y - cy) ** 2 + (x - cx) ** 2 < radius**2, image + 70, image)
    out = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "L").save(out, "PNG", compress_level=1)
    return out.getvalue()


def render_chunk(task: tuple[int, list[bool], int]) -> list[bytes]:
    start, findings, seed = task
    base = chest_base()
    return [render(start + i, finding, seed, base) for i, finding in enumerate(findings)]


def official_lists(rows: list[list[str]], seed: int) -> dict[str, str]:
    """train_val_list.txt and test_list.txt: every image of a patient on the same side."""
    patients = sorted({row[3] for row in rows})
    draws = np.random.default_rng([seed, 2]).random(len(patients))
    test_patients = {p for p, draw in zip(patients, draws) if draw < TEST_PATIENT_SHARE}
    sides = {"train_val_list.txt": [], "test_list.txt": []}
    for row in rows:
        sides["test_list.txt" if row[3] in test_patients else "train_val_list.txt"].append(row[0])
    return {name: "".join(f"{image}\n" for image in images) for name, images in sides.items()}


def build(out: str, n: int, seed: int, workers: int, lists: bool = False) -> None:
    rows = manifest_rows(n, seed)
    findings = [row[1] != "No Finding" for row in rows]
    tasks = [(start, findings[start:start + CHUNK], seed) for start in range(0, n, CHUNK)]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([HEADER, *rows])
    began = time.perf_counter()
    partial = out + ".part"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as bundle, \
            ProcessPoolExecutor(workers) as pool:
        bundle.writestr("Data_Entry_2017.csv", text.getvalue())
        for name, listed in (official_lists(rows, seed) if lists else {}).items():
            bundle.writestr(name, listed)
        for (start, _, _), pngs in zip(tasks, pool.map(render_chunk, tasks)):
            for i, png in enumerate(pngs):
                index = start + i
                bundle.writestr(f"{folder_of(index)}/images/{rows[index][0]}", png)
            done = start + len(pngs)
            if done % 5000 < CHUNK or done == n:
                print(f"{done}/{n} images, {time.perf_counter() - began:.0f} s", file=sys.stderr)
    os.replace(partial, out)
    size = os.path.getsize(out)
    print(f"{out}: {n} images, {size / 1e9:.2f} GB, {time.perf_counter() - began:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the zip to write")
    parser.add_argument("--images", type=int, default=20_000, help="how many images (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="encoding processes (default: every core)")
    parser.add_argument("--official-lists", action="store_true",
                        help="also write train_val_list.txt and test_list.txt (patient-wise, as the release)")
    args = parser.parse_args(argv)
    if args.images < 1 or args.workers < 1:
        print("make_nih_zip: --images and --workers must be at least 1", file=sys.stderr)
        return 2
    build(args.out, args.images, args.seed, args.workers, args.official_lists)
    return 0


if __name__ == "__main__":
    sys.exit(main())
