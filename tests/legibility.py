"""What makes a figure legible, measured on the figure itself (matplotlib knows every artist's
extent on the canvas): no two pieces of text overlap, no legend covers data, and a line drawn
under an identical one stays visible. `problems(figure)` lists what fails, one phrase each;
`collecting_figures` captures every figure the report writes, so a test can hold each to it.
"""

from __future__ import annotations

import contextlib

import numpy as np
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

# Pixels two extents may share before they overlap: anti-aliased edges touch without colliding.
TOUCH_PX = 1.0


def undrawn_tick_labels(figure: Figure) -> set[int]:
    """Tick labels matplotlib keeps but does not draw (their ticks lie outside the axis's view:
    their positions are stale)."""
    undrawn = set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            every = axis.get_major_ticks() + axis.get_minor_ticks()
            drawn = {id(tick) for tick in axis._update_ticks()} if axis.get_visible() else set()  # Axis.draw's
            undrawn |= {id(label) for tick in every if id(tick) not in drawn
                        for label in (tick.label1, tick.label2)}
    return undrawn


def visible_texts(figure: Figure, renderer) -> list[tuple[Text, object]]:
    """Every drawn, non-empty text with its extent on the canvas (tick labels included)."""
    texts = []
    undrawn = undrawn_tick_labels(figure)
    for text in figure.findobj(Text):
        if (id(text) in undrawn or not text.get_visible() or not text.get_text().strip()
                or not artist_shown(text)):
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            texts.append((text, box))
    return texts


def artist_shown(artist) -> bool:
    """Whether every parent of the artist is visible too (an invisible axes hides its labels)."""
    while artist is not None:
        if not artist.get_visible():
            return False
        artist = getattr(artist, "axes", None) if artist is not getattr(artist, "axes", None) else None
    return True


def shrunk(box, pixels: float = TOUCH_PX):
    return box.expanded(1, 1).padded(-pixels)


def text_overlaps(figure: Figure, renderer) -> list[str]:
    texts = visible_texts(figure, renderer)
    # A legend lays out its own entries: they are checked against everything else, not each other.
    in_legend = {id(t): id(legend) for legend, _ in legends(figure) for t in [*legend.get_texts(), legend.get_title()]}
    found = []
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            if id(a) in in_legend and in_legend.get(id(a)) == in_legend.get(id(b)):
                continue
            if shrunk(box_a).overlaps(shrunk(box_b)):
                found.append(f"text {a.get_text()!r} overlaps {b.get_text()!r}")
    return found


def data_points(ax) -> np.ndarray:
    """The display coordinates of everything plotted in `ax`: line vertices and scatter points."""
    points = []
    for line in ax.get_lines():
        if not line.get_visible() or line.get_label() == "_nolegend_" and not len(line.get_xydata()):
            continue
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) > 1:  # the segments between vertices too: a legend over a segment covers data
            t = np.linspace(0, 1, 12)[:, None, None]
            xy = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy):
            points.append(line.get_transform().transform(xy))
    for collection in ax.collections:
        if isinstance(collection, Collection) and collection.get_visible():
            offsets = collection.get_offsets()
            if len(offsets):
                points.append(collection.get_offset_transform().transform(offsets))
    return np.concatenate(points) if points else np.zeros((0, 2))


def legends(figure: Figure) -> list[tuple[Legend, list]]:
    """Each legend and the axes whose data it could cover (its own axes and their twins; a
    figure legend: every axes)."""
    found = [(legend, list(figure.axes)) for legend in figure.legends]
    for ax in figure.axes:
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            twins = [other for other in figure.axes if other.bbox.bounds == ax.bbox.bounds]
            found.append((legend, twins))
    return found


def legend_covers(figure: Figure, renderer) -> list[str]:
    found = []
    for legend, axes in legends(figure):
        box = shrunk(legend.get_window_extent(renderer), 2)
        for ax in axes:
            points = data_points(ax)
            inside = points[(points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                            & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)] if len(points) else points
            if len(inside):
                found.append(f"a legend covers {len(inside)} data points of {ax.get_title() or 'an axes'!r}")
    return found


def look(line) -> tuple:
    """What tells two lines apart on the page, colour aside (a line over its twin hides it
    whatever their colours): marker, width, dash pattern and transparency."""
    return (line.get_marker(), line.get_markersize() if line.get_marker() not in ("None", None, "") else 0,
            line.get_linewidth(), getattr(line, "_unscaled_dash_pattern", line.get_linestyle()), line.get_alpha())


def hidden_lines(figure: Figure) -> list[str]:
    """Lines drawn over an identical line with the same look: the one underneath cannot be seen."""
    found = []
    for ax in figure.axes:
        lines = [line for line in ax.get_lines() if line.get_visible() and not line.get_label().startswith("_")]
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                same_data = a.get_xydata().shape == b.get_xydata().shape and np.allclose(a.get_xydata(),
                                                                                        b.get_xydata())
                same_look = look(a) == look(b)
                if same_data and len(a.get_xydata()) and same_look:
                    found.append(f"line {b.get_label()!r} hides line {a.get_label()!r} in {ax.get_title()!r}")
    return found


def problems(figure: Figure) -> list[str]:
    """Everything that makes `figure` hard to read, one phrase each (empty: legible)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()  # the layout engine places everything, as savefig will
    renderer = canvas.get_renderer()
    return text_overlaps(figure, renderer) + legend_covers(figure, renderer) + hidden_lines(figure)


@contextlib.contextmanager
def collecting_figures(monkeypatch):
    """Every figure the report saves (through `pybench.report.plots.save`), as (file name,
    problems) pairs, checked as it is saved."""
    import pybench.report.plots as plots

    seen: list[tuple[str, list[str]]] = []
    real_save = plots.save

    def checking_save(figure, path):
        seen.append((path.name, problems(figure)))
        return real_save(figure, path)

    monkeypatch.setattr(plots, "save", checking_save)
    yield seen


