"""The run record is typed once (pybench.results.TrainingRecord) and everything that lists its
fields agrees with it: the CSV columns and the results format in docs/results.md."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from pybench.results import CSV_COLUMNS, RUN_IDENTITY, TrainingRecord

RESULTS_DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
RECORD_FIELDS = {f.name for f in fields(TrainingRecord)}


def test_every_csv_column_is_a_record_field_or_who_ran_it():
    roots = {column.split(".")[0] for column in CSV_COLUMNS}
    assert roots <= RECORD_FIELDS | set(RUN_IDENTITY), roots - RECORD_FIELDS - set(RUN_IDENTITY)


def test_the_documented_results_format_names_every_record_field():
    text = RESULTS_DOC.read_text(encoding="utf-8")
    section = text[text.index("`results.json` (schema 1):"):text.index("## Timing")]
    missing = sorted(name for name in RECORD_FIELDS if f'"{name}"' not in section
                     and f"`{name}`" not in section)
    assert not missing, f"docs/results.md, Results: {missing}"
