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
            "PYTHON_JULIAPKG_PROJECT": str(tmp_path / "jlproject"),
            "JULIA_DEPOT_PATH": str(tmp_path / "depot"),
            # offline: juliapkg (where installed) could not install Julia on first use either
            "PYTHON_JULIAPKG_OFFLINE": "yes"}


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


def knet_status(env: dict[str, str]) -> dict:
    code = ("import json; from pybench.backends import knet_backend as kb; "
            "a = kb.KnetBackend.availability(); exe, _ = kb.find_julia(); "
            "print(json.dumps({'ok': a.ok, 'version': a.version, 'reason': a.reason, "
            "'exe': exe}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_juliacall(site: Path, version: str | None) -> None:
    (site / "juliacall").mkdir(parents=True, exist_ok=True)
    (site / "juliacall" / "__init__.py").write_text("")
    if version:  # the distribution's metadata, which the backend reads
        info = site / f"juliacall-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: juliacall\nVersion: {version}\n")


def test_julia_is_found_where_juliacall_finds_it_juliaup_before_path(tmp_path):
    # juliapkg's order: its override, its own install, juliaup's Julias (newest first), and
    # `julia` on PATH only when juliaup is absent. pybench names the same one.
    site, depot, bin_dir = tmp_path / "site", tmp_path / "depot", tmp_path / "bin"
    fake_juliacall(site, None)
    for version in ("1.9.2", "1.9.4"):
        executable(depot / "juliaup" / f"julia-{version}" / "bin" / "julia",
                   f"#!/bin/sh\necho 'julia version {version}'\n")
    (depot / "juliaup" / "juliaup.json").write_text(json.dumps({"InstalledVersions": {
        "1.9.2+0.x64.linux.gnu": {"Path": "julia-1.9.2"},
        "1.9.4+0.x64.linux.gnu": {"Path": "julia-1.9.4"}}}))
    executable(bin_dir / "julia", "#!/bin/sh\necho 'julia version 1.9.0'\n")
    executable(bin_dir / "juliaup", "#!/bin/sh\nexit 0\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON_JULIAPKG_EXE": "",
           "PYTHON_JULIAPKG_PROJECT": str(tmp_path / "project"), "JULIA_DEPOT_PATH": str(depot),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    status = knet_status(env)
    assert status["ok"] and status["exe"] == str(depot / "juliaup" / "julia-1.9.4" / "bin" / "julia")
    # Without juliaup, the julia on PATH.
    (bin_dir / "juliaup").unlink()
    (depot / "juliaup" / "juliaup.json").unlink()
    assert knet_status(env)["exe"] == str(bin_dir / "julia")


def test_the_override_is_used_whatever_it_is(tmp_path):
    # juliapkg runs PYTHON_JULIAPKG_EXE even when another Julia would fit: pybench must not
    # report knet available through a Julia juliacall will not start.
    site, bin_dir = tmp_path / "site", tmp_path / "bin"
    fake_juliacall(site, None)
    executable(bin_dir / "julia", "#!/bin/sh\necho 'julia version 1.9.4'\n")
    old = executable(tmp_path / "old" / "julia", "#!/bin/sh\necho 'julia version 1.10.2'\n")
    status = knet_status({"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON_JULIAPKG_EXE": str(old),
                          "PYTHON_JULIAPKG_PROJECT": str(tmp_path / "project"),
                          "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])})
    assert not status["ok"] and "(PYTHON_JULIAPKG_EXE) is 1.10.2" in status["reason"]
    assert str(bin_dir / "julia") not in status["reason"]


def test_juliacall_09_accepts_only_julia_19(tmp_path):
    # The [julia] extra's juliacall 0.9.28 needs Julia 1.9: an older Julia is refused with it,
    # though Knet itself loads there (as CI's older juliacall shows).
    env = fake_julia_env(tmp_path, "1.7.3")
    fake_juliacall(tmp_path / "fake_site", "0.9.28")
    status = knet_status(env)
    assert not status["ok"] and "1.7.3" in status["reason"]


def test_after_pip_install_knet_is_available_after_a_one_time_install(tmp_path):
    # juliacall and juliapkg installed, no Julia anywhere yet, online: juliapkg installs Julia
    # on the first use, so knet is available (and says what the first use will do).
    site = tmp_path / "site"
    fake_juliacall(site, "0.9.28")
    (site / "juliapkg").mkdir()
    (site / "juliapkg" / "__init__.py").write_text("")
    env = {**no_julia_env(tmp_path), "PYTHON_JULIAPKG_OFFLINE": "",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    status = knet_status(env)
    assert status["ok"] and "after a one-time install" in status["version"]
    assert "needs network" in status["version"]
    # Offline, nothing can be installed: unavailable, with the fix.
    status = knet_status({**env, "PYTHON_JULIAPKG_OFFLINE": "yes"})
    assert not status["ok"] and "no Julia 1.9 found" in status["reason"]
