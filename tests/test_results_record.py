"""The run record is typed once (pybench.results.TrainingRecord) and everything that lists its
fields agrees with it: the CSV columns and the README's results format."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from pybench.results import CSV_COLUMNS, RUN_IDENTITY, TrainingRecord

README = Path(__file__).resolve().parents[1] / "README.md"
RECORD_FIELDS = {f.name for f in fields(TrainingRecord)}


def test_every_csv_column_is_a_record_field_or_who_ran_it():
    roots = {column.split(".")[0] for column in CSV_COLUMNS}
    assert roots <= RECORD_FIELDS | set(RUN_IDENTITY), roots - RECORD_FIELDS - set(RUN_IDENTITY)


def test_the_readme_results_format_names_every_record_field():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("`results.json` (schema 1):"):text.index("## Sweeps")]
    missing = sorted(name for name in RECORD_FIELDS if f'"{name}"' not in section
                     and f"`{name}`" not in section)
    assert not missing, f"README, Results: {missing}"
