"""scripts/gpu-check, as far as a machine without a GPU can check it: what it says and returns
with no GPU, its table, its exit status, and how it judges a step (exit status, a framework
that sees no GPU, a comparison with a failed run)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"


def load_script():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while it loads
    loader.exec_module(module)
    return module


gpu_check = load_script()


def test_without_a_gpu_it_says_so_runs_nothing_and_exits_2(tmp_path):
    # PATH without nvidia-smi: the answer on every machine this suite runs on today.
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": str(Path(sys.executable).parent)})
    assert result.returncode == 2, result.stderr
    assert "| an NVIDIA GPU | FAILED | 0 | nvidia-smi not found" in result.stdout
    assert result.stderr.strip() == ("gpu-check: nothing checked: nvidia-smi not found: no "
                                     "NVIDIA driver on this machine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-check.md"]  # nothing else ran


def test_a_step_fails_on_its_exit_status_and_names_its_last_line(tmp_path):
    script = "print('loading'); print('CUDA error: no kernel image'); raise SystemExit(3)"
    step = gpu_check.Step("boom", [sys.executable, "-c", script], 60)
    outcome = gpu_check.run_step(step, tmp_path)
    assert outcome.status == "failed"
    assert outcome.detail == "exit status 3: CUDA error: no kernel image"
    assert (tmp_path / "boom.log").read_text().startswith("loading")


def test_a_framework_that_cannot_use_the_gpu_fails_with_its_own_fix(tmp_path):
    # The probe prints the framework's build line (Backend.gpu_support) first, then fails
    # making a CUDA backend: the detail gives the failure and that line, which names the fix.
    script = ("print(\"CPU-only build: pip install -U 'jax[cuda12]' to use a GPU\"); "
              "raise SystemExit('--device cuda: jax sees no GPU')")
    step = gpu_check.Step("jax sees the GPU", [sys.executable, "-c", script], 60, needs=("jax",))
    outcome = gpu_check.run_step(step, tmp_path)
    assert outcome.status == "failed"
    assert outcome.detail == ("exit status 1: --device cuda: jax sees no GPU (CPU-only build: "
                              "pip install -U 'jax[cuda12]' to use a GPU)")


def test_every_registered_framework_is_probed_the_way_a_worker_makes_its_backend(tmp_path):
    from pybench.frameworks import FRAMEWORK_NAMES

    probes = [s for s in gpu_check.steps(tmp_path, list(FRAMEWORK_NAMES), 10) if s.needs]
    assert [s.needs for s in probes] == [(fw,) for fw in FRAMEWORK_NAMES]
    # Run for real on this machine (no GPU): torch's probe prints its build line, then fails
    # to make a CUDA backend, in one line.
    outcome = gpu_check.run_step(probes[0], tmp_path)
    assert probes[0].argv[-1] == "torch" and outcome.status == "failed"
    assert "CUDA" in outcome.detail and "build" in outcome.detail


def test_a_comparison_passes_only_when_every_run_finished(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": [
        {"framework": "torch", "model": "lenet5", "status": "ok"},
        {"framework": "knet", "model": "lenet5", "status": "unavailable", "reason": "no Julia"},
        {"framework": "jax", "model": "resnet8", "status": "failed", "reason": "XlaRuntimeError"}]}))
    assert gpu_check.judge_results(results) == (
        "failed", "jax resnet8: failed: XlaRuntimeError; not available: knet")
    results.write_text(json.dumps({"runs": [
        {"framework": "torch", "model": "lenet5", "status": "ok"}]}))
    assert gpu_check.judge_results(results) == ("passed", "")


def test_the_table_and_the_exit_status():
    outcomes = [gpu_check.Outcome("an NVIDIA GPU", "passed", 0, "0, NVIDIA A100, 8.0, 550.54"),
                gpu_check.Outcome("parity float64", "failed", 41.6, "exit status 1: parity: FAIL")]
    assert gpu_check.table(outcomes).splitlines() == [
        "| step | status | seconds | detail |", "| --- | --- | ---: | --- |",
        "| an NVIDIA GPU | passed | 0 | 0, NVIDIA A100, 8.0, 550.54 |",
        "| parity float64 | FAILED | 42 | exit status 1: parity: FAIL |"]
    assert gpu_check.exit_status(outcomes) == 1
    assert gpu_check.exit_status(outcomes[:1]) == 0


@pytest.mark.parametrize("framework", ["torch", "jax", "knet"])
def test_every_step_asks_for_the_gpu(framework, tmp_path):
    for step in gpu_check.steps(tmp_path, [framework], 300):
        if "pybench" in step.argv:
            assert "--device" in step.argv and step.argv[step.argv.index("--device") + 1] == "cuda"
        if "pytest" in step.argv:
            assert step.argv[step.argv.index("--pybench-device") + 1] == "cuda"
