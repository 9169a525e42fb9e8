"""Every registered backend, Knet included, holds the contract's promises and computes what torch
computes: a new backend is done when it passes here. Each framework runs tests/conformance.py in
a worker process of its own (juliacall must not share one with torch); its figures are compared
with torch's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pybench.backends import availability
from pybench.frameworks import FRAMEWORK_NAMES
from pybench.run.fidelity import LOGIT_ATOL

# float64 trajectories of three steps: what two implementations of the same formulas agree to
# (torch against JAX and Knet: 1e-14 and better, docs/statistics.md, Fidelity), with room for summation order.
FLOAT64_RTOL = FLOAT64_ATOL = 1e-9

pytestmark = pytest.mark.slow  # a worker per framework, Knet's with Julia: about 1.5 minutes

WORKER = Path(__file__).with_name("conformance.py")
REFERENCE = "torch"


def conformance(framework: str, folder: Path) -> tuple[dict, dict]:
    """(facts, arrays) of `framework`, computed once per session and framework."""
    out = folder / f"{framework}.npz"
    if not out.exists():
        done = subprocess.run([sys.executable, str(WORKER), framework, str(out)],
                              capture_output=True, text=True, timeout=1800, env={**os.environ})
        assert done.returncode == 0, f"{framework}: {done.stderr[-4000:]}"
    with np.load(out) as stored:
        arrays = {k: stored[k] for k in stored.files}
    return json.loads(str(arrays.pop("facts"))), arrays


@pytest.fixture(scope="session")
def results_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(params=FRAMEWORK_NAMES)
def framework(request) -> str:
    status = availability(request.param)
    if not status.ok:
        if request.param == "knet" and os.environ.get("CI") == "true":
            pytest.fail(f"knet is unavailable on CI: {status.reason}")
        pytest.skip(f"{request.param} is unavailable: {status.reason}")
    return request.param


def test_the_contracts_own_promises(framework, results_folder):
    facts, _ = conformance(framework, results_folder)
    failed = {k: v for k, v in facts.items()
              if k not in ("peak_memory_on_cpu",) and not k.startswith("errors/") and v is not True}
    assert not failed, failed
    assert facts["peak_memory_on_cpu"] is None  # on the CPU the training loop records RSS
    # Bad input is refused, whatever the framework's own exception.
    assert all(facts[k] for k in ("errors/step_past_the_order", "errors/images_not_4d",
                                  "errors/data_of_another_dtype")), facts


def test_forward_and_every_optimizer_formula_match_torch(framework, results_folder):
    if framework == REFERENCE:
        pytest.skip("torch is the reference the others are compared with")
    if not availability(REFERENCE).ok:
        pytest.skip("torch, the reference, is unavailable")
    _, ref = conformance(REFERENCE, results_folder)
    _, got = conformance(framework, results_folder)
    assert got.keys() == ref.keys()
    for key, expected in ref.items():
        if key.startswith("pixels/"):  # normalised inputs: a gather, so bit for bit
            np.testing.assert_array_equal(got[key].view(np.uint32), expected.view(np.uint32), err_msg=key)
        elif key.endswith(("_logits", "/embeddings")):  # float32
            np.testing.assert_allclose(got[key], expected, rtol=0, atol=LOGIT_ATOL, err_msg=key)
        else:  # float64 trajectories: losses, final weights and running statistics
            np.testing.assert_allclose(got[key], expected, rtol=FLOAT64_RTOL, atol=FLOAT64_ATOL,
                                       err_msg=key)
