"""Several stored results in one report: the same comparison on two machines, or three seeds.

`combine` reads every source with `loading.load_results` and returns one document in the shape
the report already reads, so every table and figure works unchanged. With one source the document
is that source's. With several, each run's `framework` is labelled with its source (`torch
[laptop]`) so runs from different files never merge into one row, its prediction path is made
absolute, and `sources` lists every file with its machine, command and creation time, which the
report's header states.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from pybench.errors import PybenchError
from pybench.report.loading import benchmark_source, load_results


@dataclass(frozen=True)
class Source:
    label: str  # short and unique: the results folder's name
    path: Path
    results: dict

    @property
    def folder(self) -> Path:
        """Where the files the results name (predictions) live."""
        return self.path.parent if self.path.is_file() else self.path


def read_sources(paths: list[str | Path]) -> list[Source]:
    paths = [Path(p) for p in paths]
    labels = unique_labels(paths)
    return [Source(label, path, load_results(path)) for label, path in zip(labels, paths)]


def unique_labels(paths: list[Path]) -> list[str]:
    """Folder names, made unique with the parent's name (then a number) where two clash."""
    names = [p.stem if p.is_file() else p.name for p in paths]
    for i, path in enumerate(paths):
        if names.count(names[i]) > 1:
            names[i] = f"{path.parent.name}/{names[i]}"
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def combine(sources: list[Source]) -> dict:
    """One results document holding every source's runs (see the module docstring)."""
    if not sources:
        raise PybenchError("report: give at least one results folder or file")
    if len(sources) == 1:
        return sources[0].results
    first = sources[0].results
    document = {key: copy.deepcopy(value) for key, value in first.items() if key != "runs"}
    document["command"] = "; ".join(s.results.get("command") or "?" for s in sources)
    document["sources"] = [{"label": s.label, "path": str(s.path),
                            "machine": s.results.get("machine") or {},
                            "command": s.results.get("command"),
                            "created": s.results.get("created"),
                            "dataset": (s.results.get("dataset") or {}).get("name"),
                            "data_fingerprint": (s.results.get("dataset") or {}).get("fingerprint"),
                            "config": s.results.get("config") or {}}
                           for s in sources]
    document["runs"] = [labelled(run, source) for source in sources
                        for run in source.results["runs"]]
    return document


def labelled(run: dict, source: Source) -> dict:
    run = copy.deepcopy(run)
    run["framework_name"] = run["framework"]
    run["framework"] = f"{run['framework']} [{source.label}]"
    run["source"] = source.label
    if run.get("predictions"):
        run["predictions"] = str((source.folder / run["predictions"]).resolve())
    return run


def folder_of(path: str | Path) -> Path:
    """The folder a single source's relative file names start from."""
    path = Path(path)
    if benchmark_source(path) is not None and path.is_file():
        return path.parent
    return path.parent if path.is_file() else path
