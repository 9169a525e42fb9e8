"""report.html (self-contained, the same text as report.md), several results in one report,
the baseline comparison with its significance test, and the page in a real headless browser.

The stored runs are test_report's, whose metrics are known by construction; no framework is
imported (test_report's last test proves the report never imports one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from needs import missing
from test_report import make_binary_run, make_digits_run, not_run, ok_run, write_run_dir

from pybench.report import write_report
from pybench.report.significance import EFFECT_FLOOR, step_change

REPO_ROOT = Path(__file__).resolve().parents[1]


def html_of(report_md: Path) -> str:
    return report_md.with_name("report.html").read_text(encoding="utf-8")


def h2_titles_md(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.M)


def h2_titles_html(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<h2[^>]*>(.*?)</h2>", html)]


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory) -> Path:
    return write_report(make_binary_run(tmp_path_factory.mktemp("binary")))


def test_html_fetches_nothing_and_embeds_every_figure(binary_report):
    html = html_of(binary_report)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    sources = re.findall(r'\bsrc="([^"]*)"', html)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", binary_report.read_text())
    assert len(sources) == len(figures) >= 3  # confusion, ROC, curves, step times
    for src in sources:
        assert src.startswith("data:image/png;base64,")
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', html))
    assert not re.search(r"url\(", html)  # no CSS fetch either


def test_html_has_the_markdown_sections_and_tables(binary_report):
    text, html = binary_report.read_text(), html_of(binary_report)
    assert h2_titles_html(html) == h2_titles_md(text)
    assert h2_titles_md(text)[:4] == ["Headline", "Run", "Fidelity", "Summary"]
    md_tables = re.findall(r"^\| .* \|\n\|(?: ---:? \|)+$", text, flags=re.M)
    assert html.count("<table>") == len(md_tables) > 5
    # The same numbers: every summary cell of the Markdown appears as a cell in the page.
    torch_row = next(line for line in text.splitlines() if line.startswith("| torch | resnet18"))
    for cell in [c.strip() for c in torch_row.strip("|").split("|")]:
        assert f">{cell}</td>" in html, cell


def test_headline_names_the_fastest_framework_with_its_interval(binary_report):
    headline = binary_report.read_text().split("## Run")[0]
    # torch 10 ms, jax 25 ms (60 steps each, sd 0.5 ms): the ratio with its bootstrap interval.
    match = re.search(r"\*\*torch\*\* has the fastest step \((\d+\.\d+) ms, median\): "
                      r"(\d\.\d\d)× \[(\d\.\d\d), (\d\.\d\d)\] faster than jax", headline)
    assert match, headline
    median, ratio, low, high = map(float, match.groups())
    assert median == pytest.approx(10, abs=0.3) and low <= ratio <= high
    assert low <= 2.5 <= high and high - low < 0.3
    assert "95% bootstrap intervals over steps" in headline


def test_one_seed_makes_no_accuracy_claim_however_far_apart(tmp_path):
    labels = np.repeat([0, 1], 50)
    logits = np.stack([np.zeros(100), np.where(labels == 1, 1.0, -1.0)], 1).astype(np.float32)
    run_dir = write_run_dir(tmp_path / "run", ["a", "b"], [
        ok_run("torch", "lenet5", 5.0, 0.99, predictions="predictions/t.npz"),
        ok_run("jax", "lenet5", 6.0, 0.70, predictions="predictions/j.npz")],
        {"predictions/t.npz": (labels, logits), "predictions/j.npz": (labels, logits)})
    headline = write_report(run_dir).read_text().split("## Run")[0]
    assert "torch 99.00%, jax 70.00%, from one seed: accuracy cannot be compared" in headline
    assert "differs" not in headline and "beyond noise" not in headline


def test_raw_html_in_a_stored_string_is_shown_as_text(tmp_path):
    labels, logits = np.repeat([0, 1], 5), np.tile([[1.0, 0.0]], (10, 1)).astype(np.float32)
    run_dir = write_run_dir(tmp_path / "run", ["a", "b"], [
        ok_run("torch", "lenet5", 5.0, 0.5, predictions="predictions/t.npz"),
        not_run("jax", "lenet5", "failed", '<img src="http://example.invalid/x.png"> boom')],
        {"predictions/t.npz": (labels, logits)})
    html = html_of(write_report(run_dir))
    assert "&lt;img" in html and "example.invalid" in html  # shown as text
    assert not re.search(r'<img[^>]*src="http', html)


def make_seed_run(root: Path, seed: int, median_ms: float) -> Path:
    run_dir = make_digits_run(root)
    results = json.loads((run_dir / "results.json").read_text())
    results["config"]["seed"] = seed
    rng = np.random.default_rng(seed)
    for run in results["runs"]:
        if run["status"] == "ok":
            run["step_times_ms"] = [400.0] + list(median_ms + rng.normal(0, 0.3, 200))
            run["step_time_ms"].update(median=float(np.median(run["step_times_ms"][1:])), n=200)
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def test_several_results_state_their_sources_and_pool_the_seeds(tmp_path):
    a = make_seed_run(tmp_path / "seed0", 0, 4.0)
    b = make_seed_run(tmp_path / "seed1", 1, 4.0)
    report = write_report([a, b], tmp_path / "combined")
    text = report.read_text()
    assert (tmp_path / "combined" / "report.html").exists()
    sources = text.split("## Sources")[1].split("\n## ")[0]
    assert "| seed0 | Test CPU; 2 cores" in sources and "| seed1 |" in sources
    assert "torch [seed0]" in text and "jax [seed1]" in text
    seeds = text.split("## Seeds aggregated")[1].split("\n## ")[0]
    torch_row = next(line for line in seeds.splitlines() if line.startswith("| torch |"))
    cells = [c.strip() for c in torch_row.strip("|").split("|")]
    # framework, model, device, runs, seeds, accuracy mean, 95% interval, sd, pooled median, p90
    assert cells[3] == "2" and cells[4] == "0, 1" and cells[5] == "97.00"
    assert cells[6] == "97.00-97.00" and cells[7] == "0.00"
    assert abs(float(cells[8]) - 4.0) < 0.1
    # Frameworks are compared within each source; the sources only through --baseline.
    headline = text.split("## Run")[0]
    assert "- **lenet5** [seed0]:" in headline and "- **lenet5** [seed1]:" in headline
    assert "torch [seed0]" not in headline


def test_step_change_flags_a_real_difference_and_not_noise():
    rng = np.random.default_rng(0)
    base = 10 + rng.normal(0, 0.5, 300)
    slower = 11 + rng.normal(0, 0.5, 300)
    same = 10 + rng.normal(0, 0.5, 300)
    change = step_change(base, slower)
    assert change["significant"] and change["p"] < 1e-10 and change["ratio"] == pytest.approx(1.1, abs=0.01)
    assert not step_change(base, same)["significant"] and step_change(base, same)["p"] > 0.01
    # A 1% shift on a long run: the test alone would flag it; the effect floor does not.
    tiny = 10.1 + rng.normal(0, 0.05, 20000)
    steady = 10 + rng.normal(0, 0.05, 20000)
    change = step_change(steady, tiny)
    assert change["p"] < 1e-10 and abs(change["ratio"] - 1) < EFFECT_FLOOR
    assert not change["significant"]


def run_report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybench", "report", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_baseline_ratios_significance_and_fail_on_regression(tmp_path):
    base = make_seed_run(tmp_path / "base", 0, 4.0)
    slow = make_seed_run(tmp_path / "slow", 0, 5.0)  # 25% slower, same seed
    result = run_report(slow, "--baseline", base, "--fail-on-regression", "10", "--no-plots")
    assert result.returncode == 1, result.stderr
    assert "torch lenet5: step time 1.25" in result.stderr and "beyond --fail-on-regression 10%" \
        in result.stderr
    text = (slow / "report.md").read_text()
    table = text.split("## Baseline")[1].split("\n## ")[0]
    torch_row = next(line for line in table.splitlines() if line.startswith("| torch | lenet5"))
    assert "25% slower" in torch_row and "| 1.25" in torch_row
    # Looser threshold than the slowdown: the report still says so, the exit status is 0.
    assert run_report(slow, "--baseline", base, "--fail-on-regression", "30",
                      "--no-plots").returncode == 0
    same = make_seed_run(tmp_path / "same", 0, 4.0)
    result = run_report(same, "--baseline", base, "--fail-on-regression", "1", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "no significant change" in (same / "report.md").read_text()


def test_a_baseline_among_the_sources_is_not_held_against_itself(tmp_path):
    base = make_seed_run(tmp_path / "base", 0, 4.0)
    slow = make_seed_run(tmp_path / "slow", 0, 5.0)
    report = write_report([base, slow], tmp_path / "both", baseline=base / "results.json",
                          plots=False)
    table = report.read_text().split("## Baseline")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| torch") or
            line.startswith("| jax")]
    assert rows and all("[slow]" in row for row in rows), rows
    assert all("25% slower" in row for row in rows), rows


def test_fail_on_regression_without_a_baseline_is_one_line(tmp_path):
    run_dir = make_seed_run(tmp_path / "run", 0, 4.0)
    result = run_report(run_dir, "--fail-on-regression", "5")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--fail-on-regression needs --baseline" in result.stderr


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    missing("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def screenshot_offline(page: Path, tmp_path: Path) -> str:
    """Open `page` in headless Chromium with every host resolving to nothing: a screenshot of
    some substance must come out and the console must be clean (a page that fetched anything
    would log a load error). The page's DOM as the browser built it."""
    browser = chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / f"{page.stem}.png"
    result = subprocess.run([browser, *flags, "--window-size=1280,3000",
                             f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines()
               if "CONSOLE" in line or "Failed to load resource" in line
               or "ERR_NAME_NOT_RESOLVED" in line]
    assert not console, console
    return subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120).stdout


def test_report_html_renders_in_a_real_browser_offline(binary_report, tmp_path):
    dom = screenshot_offline(binary_report.with_name("report.html"), tmp_path)
    for title in h2_titles_md(binary_report.read_text()):
        assert re.search(rf"<h2[^>]*>{re.escape(title)}</h2>", dom), title
    assert dom.count("<img") == 4 and dom.count("<table>") > 5
