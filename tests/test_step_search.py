"""The step-variant search tool (tools/step_search): its verdict and loss checks on given
rounds, its command line on bad input, and one short real search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "step_search"
sys.path.insert(0, str(TOOL.parent))
import step_search  # noqa: E402  (tools/step_search is a package outside pybench)
from step_search import Round  # noqa: E402


def rounds(ms: float, loss: float = 2.3, n: int = 2) -> list[Round]:
    return [Round([ms, ms, ms], 100.0, loss) for _ in range(n)]


def test_a_default_slower_than_the_ratio_fails_and_names_the_faster_variant():
    rows = step_search.summarize({"default": rounds(12.5), "b": rounds(10.0)}, set())
    assert rows[1]["ratio"] == pytest.approx(0.8)
    failed = step_search.verdict(rows)
    assert failed is not None and "'b'" in failed and "1.25x" in failed


def test_a_default_within_the_ratio_passes():
    rows = step_search.summarize({"default": rounds(11.9), "b": rounds(10.0)}, set())
    assert step_search.verdict(rows) is None


def test_a_variant_computing_another_loss_is_rejected():
    with pytest.raises(AssertionError, match="first loss"):
        step_search.summarize({"default": rounds(10.0), "b": rounds(5.0, loss=2.4)}, set())


def test_a_variant_that_lost_steps_is_rejected():
    with pytest.raises(AssertionError, match="timed steps"):
        step_search.summarize({"default": rounds(10.0), "b": rounds(10.0, n=1)}, set())


def test_the_rounds_rotate_so_no_variant_always_follows_another():
    seen: list[str] = []

    def variant(name):
        return lambda: seen.append(name) or Round([1.0], 1.0, 1.0)

    step_search.interleaved_rounds({n: variant(n) for n in "abc"}, 3)
    assert seen == list("abc") + list("bca") + list("cab")


@pytest.mark.parametrize("args, fragment", [
    (["--model", "resnet50"], "unknown model 'resnet50'"),
    (["--tables", "torch,tf"], "unknown table tf"),
    (["--steps", "1"], "at least 2 steps"),
])
def test_bad_input_is_one_line_and_status_2(args, fragment):
    done = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert fragment in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_short_resnet_search_measures_every_torch_variant_from_the_same_first_loss(
        data_dir, tmp_path):
    out = tmp_path / "search.json"
    done = subprocess.run(
        [sys.executable, str(TOOL), "--model", "resnet8", "--tables", "torch", "--steps", "3",
         "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, env={**__import__("os").environ,
                                             "PYBENCH_CACHE_DIR": str(tmp_path / "cache")})
    # A 3-step round on a shared machine can put the default past the ratio: the verdict's
    # exit status 1 is allowed here, a crash (any other status) is not.
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(out.read_text())["tables"]["torch"]
    names = [r["variant"] for r in rows]
    assert names[0] == "pybench torch backend (default)" and "by hand: contiguous NCHW" in names
    assert len({round(r["first_loss"], 4) for r in rows}) == 1
    assert all(r["median_ms"] > 0 for r in rows)
    assert "| **pybench torch backend (default)** |" in done.stdout and "resnet8: torch" in done.stdout


@pytest.mark.parametrize("model, plain", [("lenet5", True), ("resnet8", True), ("resnet18", True),
                                          ("resnet18-imagenet", False), ("resnet34-imagenet", False),
                                          ("resnet50-imagenet", False), ("densenet121-imagenet", False)])
def test_the_plain_knet_loop_is_offered_only_for_the_models_it_builds(model, plain):
    """knet_plain.jl knows LeNet-5 and basic-block ResNets behind the small stem: offering it
    for an ImageNet-stem ResNet compared another network (resnet34's first loss differed)."""
    from step_search.knet_variants import KNET_FORM_ENV, knet_process_options

    forms = {env.get(KNET_FORM_ENV) for env in knet_process_options(model).values()}
    assert ("plain" in forms) == plain
