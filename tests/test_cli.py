"""The command line's own promises: `list`, one-line errors, `--debug`."""

from __future__ import annotations

from pybench.backends import availability


def test_list_names_datasets_models_and_framework_availability(run_cli):
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("mnist", "digits", "lenet5", "resnet8", "resnet20", "resnet18", "torch", "jax",
                 "knet"):
        assert name in result.stdout
    knet_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("knet"))
    knet = availability("knet")
    if knet.ok:
        assert f"available ({knet.version})" in knet_line and "Knet 1.4.10" in knet_line
    else:
        # the fix for either case: no juliacall ('.[julia]'), or no usable Julia
        assert "unavailable" in knet_line and "PYTHON_JULIAPKG_EXE" in knet_line
    torch_line = next(line for line in result.stdout.splitlines()
                      if line.strip().startswith("torch"))
    assert "available (" in torch_line


def test_usage_errors_are_one_line(cli_error):
    cli_error("compare", "digits", "--epochs", "0", fragments=("--epochs",))
    cli_error("compare", "digits", "--lr", "-1", fragments=("--lr",))
    cli_error("compare", "digits", "--target-accuracy", "98", fragments=("--target-accuracy",))
    cli_error("frobnicate")


def test_debug_shows_the_traceback(run_cli):
    result = run_cli("--debug", "compare", "digits", "--models", "vgg16")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "vgg16" in result.stderr
