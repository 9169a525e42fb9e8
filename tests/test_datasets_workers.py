"""Workers reuse the parent's data: a compare on an image folder decodes it once, in the parent
(which fills the dataset cache), and every worker opens that cache entry directly, never listing
the folder or reading one of its files. Watched with Python's audit hooks (`sys.addaudithook`),
installed in every process the command starts through a `sitecustomize` module on PYTHONPATH:
each `open`, `os.listdir` and `os.scandir` of a path under the dataset folder is logged with the
process's command line. Also: the cache key reads file sizes and times, not image bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

AUDIT = '''
import os, sys, json
_WATCHED = os.environ["PYBENCH_TEST_WATCHED"]
_LOG = os.environ["PYBENCH_TEST_AUDIT_LOG"]

def _hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0]) if not isinstance(args[0], int) else ""
        if path.startswith(_WATCHED):
            with open(_LOG, "a") as log:  # an open of the log, not of the watched folder
                log.write(json.dumps({"argv": sys.argv, "event": event, "path": path}) + "\\n")

sys.addaudithook(_hook)
'''


def class_folder(root: Path, per_class: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def reads(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_workers_open_the_parents_cache_entry_and_never_read_the_source(tmp_path, isolated_cache):
    data = class_folder(tmp_path / "folder")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "audit.log"
    env = {**os.environ, "PYBENCH_CACHE_DIR": str(isolated_cache), "PYTHONPATH": str(hook),
           "PYBENCH_TEST_WATCHED": str(data), "PYBENCH_TEST_AUDIT_LOG": str(log)}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "pybench", "compare", str(data), "--frameworks", "torch,jax",
                           "--batch-size", "8", "--max-steps", "2", "--out", str(out), "--no-report"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = reads(log)
    parent = [r for r in seen if "pybench.run.worker" not in " ".join(r["argv"])]
    workers = [r for r in seen if "pybench.run.worker" in " ".join(r["argv"])]
    assert any(r["event"] == "open" and r["path"].endswith(".png") for r in parent)  # it did decode them
    assert workers == [], workers[:3]  # no worker listed the folder or opened an image
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    # Again, cached: the parent lists the folder and reads each file's size and time, never its bytes.
    log.unlink()
    done = subprocess.run([sys.executable, "-m", "pybench", "datasets", "info", str(data)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    again = reads(log)
    assert any(r["event"] in ("os.scandir", "os.listdir") for r in again)
    assert not [r for r in again if r["event"] == "open"], again[:3]


def test_the_cache_key_reads_sizes_and_times_not_bytes_unless_asked(tmp_path, isolated_cache, monkeypatch):
    from pybench.datasets import cache, load_dataset

    data = class_folder(tmp_path / "folder", per_class=6)
    first = load_dataset(str(data), test_fraction=0.5, progress=False)
    hashed = []
    real = cache.content_identity
    monkeypatch.setattr(cache, "content_identity", lambda path: hashed.append(path) or real(path))
    again = load_dataset(str(data), test_fraction=0.5, progress=False)
    assert again.fingerprint == first.fingerprint and again.cache_entry == first.cache_entry
    assert hashed == []  # no image file read for the key
    by_content = load_dataset(str(data), test_fraction=0.5, progress=False, hash_files=True)
    assert len(hashed) == 12 and by_content.fingerprint == first.fingerprint
    assert by_content.cache_entry != first.cache_entry  # an entry of its own kind
    # A file rewritten (same size, new time) is another source.
    image = data / "a" / "0.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert load_dataset(str(data), test_fraction=0.5, progress=False).cache_entry != first.cache_entry
