"""Whether the knet backend is available: the Julia versions it accepts and how it labels them,
the fix it names when it is not, and that it never loads Julia by accident.

Each check runs in a fresh interpreter so that environment changes and module imports cannot
leak between tests (and so 'juliacall not in sys.modules' means something).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from needs import missing

ROOT = Path(__file__).resolve().parent.parent
FIX = "install the [julia] extra (pip install -e '.[julia]')"
FIX_EXE = "point PYTHON_JULIAPKG_EXE at an existing Julia 1.9 and set PYTHON_JULIAPKG_OFFLINE=yes"

# Runs in the child: optionally hides juliacall from the import system, then prints availability.
CHILD = """
import importlib.util, json, sys
if {hide_juliacall}:
    real_find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a, **k: None if name == "juliacall" else real_find_spec(name, *a, **k)
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "juliacall":
                raise ImportError("juliacall hidden by the test")
    sys.meta_path.insert(0, Block())
from pybench.backends import availability
knet, torch = availability("knet"), availability("torch")
print(json.dumps({{"knet_ok": knet.ok, "reason": knet.reason, "torch_ok": torch.ok,
                  "torch_reason": torch.reason, "juliacall_loaded": "juliacall" in sys.modules}}))
"""


def run_child(hide_juliacall: bool, env_overrides: dict[str, str]) -> dict:
    env = {**os.environ, **env_overrides}
    out = subprocess.run([sys.executable, "-c", CHILD.format(hide_juliacall=hide_juliacall)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def no_julia_env(tmp_path) -> dict[str, str]:
    """An environment where no Julia can be found: empty PATH dir, no juliapkg project."""
    return {"PATH": str(tmp_path), "PYTHON_JULIAPKG_EXE": "",
            "PYTHON_JULIAPKG_PROJECT": str(tmp_path / "jlproject")}


def test_without_juliacall_knet_is_unavailable_with_the_fix(tmp_path):
    result = run_child(True, {})
    assert not result["knet_ok"]
    assert "juliacall is not installed" in result["reason"]
    assert FIX in result["reason"] and FIX_EXE in result["reason"]
    assert result["torch_ok"], result["torch_reason"]
    assert not result["juliacall_loaded"]


def test_without_julia_executable_knet_is_unavailable_with_the_fix(tmp_path, monkeypatch):
    """juliacall may or may not be installed here; a fake one makes find_spec succeed."""
    fake = tmp_path / "fake_site"
    (fake / "juliacall").mkdir(parents=True)
    (fake / "juliacall" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    env = no_julia_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(ROOT)])
    result = run_child(False, env)
    assert not result["knet_ok"]
    assert "no Julia 1.9 found" in result["reason"]
    assert FIX_EXE in result["reason"]
    assert result["torch_ok"], result["torch_reason"]
    assert not result["juliacall_loaded"]


def test_wrong_julia_version_is_named(tmp_path):
    fake = tmp_path / "fake_site"
    (fake / "juliacall").mkdir(parents=True)
    (fake / "juliacall" / "__init__.py").write_text("")
    julia = tmp_path / "julia"
    julia.write_text("#!/bin/sh\necho 'julia version 1.10.4'\n")
    julia.chmod(0o755)
    env = {**no_julia_env(tmp_path), "PYTHON_JULIAPKG_EXE": str(julia),
           "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    result = run_child(False, env)
    assert not result["knet_ok"]
    assert "1.10.4" in result["reason"] and FIX_EXE in result["reason"]


def fake_julia_env(tmp_path, version: str) -> dict[str, str]:
    """juliacall importable (an empty stand-in) and PYTHON_JULIAPKG_EXE printing `version`."""
    fake = tmp_path / "fake_site"
    (fake / "juliacall").mkdir(parents=True, exist_ok=True)
    (fake / "juliacall" / "__init__.py").write_text("")
    julia = tmp_path / "julia"
    julia.write_text(f"#!/bin/sh\necho 'julia version {version}'\n")
    julia.chmod(0o755)
    return {**no_julia_env(tmp_path), "PYTHON_JULIAPKG_EXE": str(julia),
            "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}


@pytest.mark.parametrize("version, accepted, labelled", [
    ("1.9.4", True, False),    # the supported configuration: no label
    ("1.5.3", True, True),     # what CI runs (../shared/julia): accepted, labelled unsupported
    ("1.7.3", True, True),
    ("1.10.4", False, None),   # CUDA.jl 3 (hence Knet) does not run on 1.10+
    ("1.4.2", False, None),
])
def test_julia_versions_knet_runs_on_are_accepted_and_labelled(tmp_path, version, accepted,
                                                               labelled):
    code = ("import json; from pybench.backends import knet_backend as kb; "
            "a = kb.KnetBackend.availability(); "
            "print(json.dumps({'ok': a.ok, 'version': a.version, 'reason': a.reason}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **fake_julia_env(tmp_path, version)}, timeout=300)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout.strip().splitlines()[-1])
    assert status["ok"] is accepted, status
    if accepted:
        assert f"Julia {version}" in status["version"]
        assert ("not the supported Julia 1.9" in status["version"]) is labelled
    else:  # the message still points at the supported Julia
        assert version in status["reason"] and "no Julia 1.9 found" in status["reason"]
        assert FIX_EXE in status["reason"]


def test_knet_is_available_in_ci():
    """CI sets up ../shared/julia (.ci/run): there knet must run, or every knet comparison in
    the suite would quietly fall back to torch and jax."""
    from pybench.backends import availability
    status = availability("knet")
    if not status.ok:
        missing(f"knet is unavailable: {status.reason}")
    assert "Knet 1.4.10" in status.version


def test_importing_the_backend_module_does_not_import_juliacall():
    code = ("import sys, pybench.backends.knet_backend as kb; kb.KnetBackend.availability(); "
            "kb.KnetBackend.cuda_usable(); print('juliacall' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_juliapkg_json_points_at_knet_models():
    """juliapkg resolves "path" relative to the json's directory (juliapkg/deps.py)."""
    from pybench.backends import knet_backend
    spec = json.loads(knet_backend.JULIAPKG_JSON.read_text())
    assert spec["julia"] == "~1.9"
    assert spec["packages"]["Knet"]["version"] == "=1.4.10"
    path = knet_backend.knet_models_path()
    assert (path / "Project.toml").is_file()
    project = (path / "Project.toml").read_text()
    assert spec["packages"]["KnetModels"]["uuid"] in project
    for name in ("Knet", "CUDA"):
        assert f'{name} = "{spec["packages"][name]["uuid"]}"' in project
