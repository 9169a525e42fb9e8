"""What was done to a dataset on its way into the arrays, said in one place.

Decoding counts, per image, what it was before the options changed it (`ImageFacts`: its mode,
file type and size, and whether a colour image holds gray pixels); `Tally` adds the counts up over
every image and every decoding process, and `Tally.to_dict` stores them beside the options that
acted on them. From that record `provenance_lines` says what was done: how images were made
square (cropped, squashed or letterboxed, and how much was cut or padded), channels repeated or
merged, alpha dropped, palettes expanded, 16-bit values scaled, images skipped, files left out;
`run_lines` adds what a run's settings do to the data (the partial batch dropped each epoch,
which epoch is kept). `datasets info` (`describe_dataset`), the console's header, results.json
and the report all print these lines, so the four can never tell different stories.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

RESIZE_METHODS = ("crop", "squash", "pad")
DEFAULT_RESIZE = "crop"
RESIZE_HELP = {
    "crop": "the shorter side resized to S, the longer side's excess cut from both ends (centre crop)",
    "squash": "resized to S x S, the aspect ratio not kept",
    "pad": "the longer side resized to S, the shorter side padded with black on both sides (letterbox)",
}

# PIL modes, by what converting them to 8-bit gray or RGB does.
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}
ALPHA_MODES = {"LA", "La", "RGBA", "RGBa", "PA"}
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "F"}
PALETTE_MODES = {"P", "PA"}
SIZES_SHOWN = 3  # sizes named in a line; the rest counted


@dataclass(frozen=True)
class ImageFacts:
    """One image as it was read, before the size and channel options changed it."""

    mode: str  # PIL's mode: L, LA, P, RGB, RGBA, I;16, ...
    kind: str  # the file type PIL found (PNG, JPEG, ...), or "arrays" for arrays
    width: int
    height: int
    gray_colour: bool = False  # stored as colour, but R = G = B in every pixel


class Tally:
    """`ImageFacts` counted over a set of images (added up across decoding processes)."""

    def __init__(self, counts: Counter | None = None):
        self.counts: Counter = Counter(counts or {})

    def add(self, facts: ImageFacts, count: int = 1) -> None:
        self.counts[facts] += count

    def update(self, other: Tally) -> None:
        self.counts.update(other.counts)

    def to_dict(self, image_size: int | None, resize: str, grayscale: bool, channels: int) -> dict:
        """The record provenance stores: what the images were, and the options that acted on them."""
        def by(key) -> dict:
            counted: Counter = Counter()
            for facts, count in self.counts.items():
                counted[key(facts)] += count
            return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))  # ties by name

        return {"images": sum(self.counts.values()),
                "sizes": by(lambda f: f"{f.width}x{f.height}"),
                "modes": by(lambda f: f.mode),
                "kinds": by(lambda f: f.kind),
                "gray_colour": sum(c for f, c in self.counts.items() if f.gray_colour),
                "image_size": image_size, "resize": resize, "grayscale": grayscale, "channels": channels}


def array_changes(count: int, shape: tuple[int, int, int], image_size: int | None, resize: str,
                  grayscale: bool, channels: int) -> dict:
    """The record for images that arrive as arrays (MNIST, digits, .npz), all of one shape."""
    tally = Tally()
    tally.add(ImageFacts("L" if shape[0] == 1 else "RGB", "arrays", shape[2], shape[1]), count)
    return tally.to_dict(image_size, resize, grayscale, channels)


# ---------------------------------------------------------------- saying it

def counted(items: dict, limit: int = SIZES_SHOWN) -> str:
    """"640x480: 40, 480x640: 40 and 2 more": the largest counts first."""
    shown = [f"{name}: {count:,}" for name, count in list(items.items())[:limit]]
    rest = len(items) - limit
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


def percent_range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{100 * high:.0f}%" if round(100 * low) == round(100 * high) else f"{100 * low:.0f}-{100 * high:.0f}%"


def size_lines(changes: dict) -> list[str]:
    """How the images got their size: untouched, resized, and for non-square images cropped,
    squashed or letterboxed (with how much of each image was cut or padded)."""
    size = changes.get("image_size")
    sizes = {parse_size(text): count for text, count in (changes.get("sizes") or {}).items()}
    if size is None:
        return []
    square_other = {s: c for s, c in sizes.items() if s[0] == s[1] and s[0] != size}
    oblong = {s: c for s, c in sizes.items() if s[0] != s[1]}
    lines = []
    if square_other:
        lines.append(f"resized to {size}x{size} (bilinear): {sum(square_other.values()):,} square images "
                     f"({counted({f'{w}x{h}': c for (w, h), c in square_other.items()})})")
    if not oblong:
        return lines
    method = changes.get("resize") or DEFAULT_RESIZE
    n = sum(oblong.values())
    listed = counted({f"{w}x{h}": c for (w, h), c in oblong.items()})
    shares = [1 - min(w, h) / max(w, h) for w, h in oblong]
    if method == "crop":
        lines.append(f"centre-cropped to {size}x{size} (--resize crop, the default): {n:,} non-square images "
                     f"({listed}) had the shorter side resized to {size} and {percent_range(shares)} of the longer "
                     "side cut away (--resize pad keeps the whole image, --resize squash stretches it)")
    elif method == "pad":
        lines.append(f"letterboxed to {size}x{size} (--resize pad): {n:,} non-square images ({listed}) had the "
                     f"longer side resized to {size} and the shorter padded with black: {percent_range(shares)} of "
                     "each such image is padding")
    else:
        stretch = [max(w, h) / min(w, h) for w, h in oblong]
        lines.append(f"squashed to {size}x{size} (--resize squash): {n:,} non-square images ({listed}) resized "
                     f"without keeping their aspect ratio (one side stretched up to {max(stretch):.2f}x)")
    return lines


def channel_lines(changes: dict) -> list[str]:
    """Modes mixed, channels merged or repeated, alpha dropped, palettes expanded, 16-bit scaled,
    and a colour set whose images are all gray."""
    modes = changes.get("modes") or {}
    total = changes.get("images") or 0
    if not total:
        return []
    lines = []
    real_modes = {m: c for m, c in modes.items()}
    kinds = {k: c for k, c in (changes.get("kinds") or {}).items() if k != "arrays"}
    if len(real_modes) > 1 or len(kinds) > 1:
        mixed = f"mixed image modes: {counted(real_modes, 8)}"
        if len(kinds) > 1:
            mixed += f"; file types: {counted(kinds, 8)}"
        lines.append(mixed)
    gray = sum(c for m, c in modes.items() if m in GRAY_MODES)
    colour = total - gray
    channels = changes.get("channels")
    if changes.get("grayscale") and colour:
        lines.append(f"converted to one channel (--grayscale): {colour:,} colour images")
    elif channels == 3 and gray:
        why = "the set holds colour images" if colour else "the model takes three channels"
        lines.append(f"gray images repeated to three channels: {gray:,} of {total:,} images ({why})")
    alpha = sum(c for m, c in modes.items() if m in ALPHA_MODES)
    if alpha:
        lines.append(f"alpha channel dropped: {alpha:,} images "
                     f"({', '.join(sorted(m for m in modes if m in ALPHA_MODES))})")
    palette = sum(c for m, c in modes.items() if m in PALETTE_MODES)
    if palette:
        lines.append(f"palette expanded to {'gray' if changes.get('grayscale') else 'RGB'}: {palette:,} images (P)")
    wide = sum(c for m, c in modes.items() if m in WIDE_MODES)
    if wide:
        lines.append(f"16-bit (or wider) values scaled to 8 bits: {wide:,} images "
                     f"({', '.join(sorted(m for m in modes if m in WIDE_MODES))})")
    gray_colour = changes.get("gray_colour") or 0
    if channels == 3 and not changes.get("grayscale") and gray_colour and gray_colour + gray == total:
        lines.append(gray_colour_line(changes, gray_colour))
    return lines


def gray_colour_line(changes: dict, gray_colour: int) -> str:
    """Every image of a colour set is gray: --grayscale, and what it saves."""
    size = changes.get("image_size")
    if size is None:
        width, height = parse_size(next(iter(changes["sizes"])))
    else:
        width = height = size
    three = changes["images"] * 3 * width * height
    one, three_text = in_bytes(three // 3, three)
    return (f"every image is gray ({gray_colour:,} stored as colour with R = G = B): --grayscale reads them as "
            f"one channel, {one} instead of {three_text} of decoded images and a third of the first layer's "
            "multiply-adds")


def in_bytes(*counts: int) -> list[str]:
    """Byte counts in one unit, the largest's (kB, MB or GB)."""
    unit, scale = next((u, s) for u, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("bytes", 1))
                       if max(counts) >= s or s == 1)
    return [f"{count / scale:,.1f} {unit}" for count in counts]


def change_lines(changes: dict) -> list[str]:
    """What the options and decoding did to a set of images (a `Tally.to_dict` record)."""
    return size_lines(changes) + channel_lines(changes)


PLURAL_NOUNS = {"files": "file", "images": "image", "folders": "folder", "rows": "row"}


def plural(count: int, what: str) -> str:
    """`what` (written for many: "mask files (...)") for `count` things: its first plural noun
    made singular for one ("1 folder beside the split folders")."""
    if count != 1:
        return what
    words = what.split(" ")
    for i, word in enumerate(words):
        if word in PLURAL_NOUNS:
            words[i] = PLURAL_NOUNS[word]
            break
    return " ".join(words)


def provenance_lines(provenance: dict) -> list[str]:
    """How a dataset was read and changed: the layout, where each split came from, what was
    left out or skipped, what was done to the images, and unlabelled images found."""
    lines = [f"layout: {provenance.get('layout', 'arrays')}"]
    lines += [f"  {name}: {how}" for name, how in (provenance.get("splits") or {}).items()]
    for what, count in (provenance.get("left_out") or {}).items():
        lines.append(f"left out {count:,} {plural(count, what)}")
    unreadable = provenance.get("unreadable")
    if isinstance(unreadable, list) and unreadable:
        shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
        lines.append(f"left out {len(unreadable):,} {plural(len(unreadable), 'unreadable images')} "
                     f"(--skip-unreadable): {shown}")
    elif isinstance(unreadable, int) and unreadable:
        lines.append(f"left out {unreadable:,} {plural(unreadable, 'unreadable images')} (--skip-unreadable; "
                     "listed in unreadable.txt)")
    lines += change_lines(provenance.get("changes") or {})
    for found in (provenance.get("unlabelled") or {}).values():
        lines.append(f"{found['folder']}: {found['images']:,} unlabelled images (no class folders): not trained "
                     f"or evaluated on; every run predicts them (predictions-<run>.csv; --predict DIR for "
                     "another folder)")
    return lines


def run_lines(summary: dict, config: dict) -> list[str]:
    """What a run's settings do to the data: the images each epoch leaves out (the last
    partial batch), and which epoch's weights give the test figures."""
    lines = []
    train = summary.get("train_size") or 0
    batch = config.get("batch_size")
    if batch and train:
        dropped = train % batch
        steps = train // batch
        if dropped and not config.get("balance"):
            lines.append(f"each epoch trains {steps:,} full batches of {batch}: the last {dropped:,} of the "
                         f"{train:,} training images (a different {dropped:,} each epoch, as the order is "
                         "reshuffled) wait for the next epoch, the same in every framework")
        elif config.get("balance"):
            lines.append(f"each epoch draws {steps * batch:,} training images by class-balanced sampling with "
                         f"replacement (--balance), {steps:,} batches of {batch}")
    if summary.get("val_size"):
        lines.append("the epoch with the best validation score is kept: its weights give the test figures")
    elif (config.get("epochs") or 1) > 1:
        lines.append("no validation split: the last epoch's weights are kept (--val-fraction 0.1 would keep "
                     "the best epoch on validation)")
    return lines


def summary_lines(summary: dict, config: dict | None = None) -> list[str]:
    """Everything said about the data: `provenance_lines`, then `run_lines` when a run's
    configuration is known. `summary` is results.json's "dataset" record."""
    lines = provenance_lines(summary.get("provenance") or {})
    return lines + (run_lines(summary, config) if config else [])


# ---------------------------------------------------------------- `datasets info`

def class_counts_text(labels: np.ndarray, classes: list[str]) -> str:
    counts = np.bincount(labels, minlength=len(classes))
    return ", ".join(f"{name}: {int(count)}" for name, count in zip(classes, counts))


def finding_counts_text(labels: np.ndarray, findings: list[str]) -> str:
    """Images per finding, then how many have none and how many several (multi-label labels)."""
    per_image = labels.sum(axis=1)
    counts = ", ".join(f"{name}: {int(count)}" for name, count in zip(findings, labels.sum(axis=0)))
    return (f"{counts}; no finding: {int((per_image == 0).sum())}, several findings: "
            f"{int((per_image > 1).sum())}")


def groups_text(groups: dict) -> str:
    """How many groups (patients) each split holds, and how many are in more than one."""
    counts = ", ".join(f"{groups[split]} in {split}" for split in ("train", "val", "test") if split in groups)
    shared = groups.get("both", 0)
    return (f"splits grouped by {groups['column']!r}: groups {counts}; "
            + (f"{shared} in more than one (the official lists' own overlap)" if shared else "none in two splits"))


def describe_dataset(ds) -> str:
    """What `python -m pybench datasets info SPEC` prints."""
    kind = "findings, multi-label" if ds.multilabel else "classes"
    lines = [f"name: {ds.name}", f"source: {ds.source}",
             f"{kind} ({ds.num_classes}): {', '.join(ds.classes)}", f"input shape (C, H, W): {ds.in_shape}",
             *provenance_lines(ds.provenance.to_dict()), "splits:"]
    for name, split in ds.splits().items():
        lines.append(f"  {name}: images {split.images.shape} {split.images.dtype}, "
                     f"labels {split.labels.shape} {split.labels.dtype}")
        if ds.multilabel:
            lines.append(f"    images per finding: {finding_counts_text(split.labels, ds.classes)}")
        else:
            lines.append(f"    class counts: {class_counts_text(split.labels, ds.classes)}")
    lines.append("normalisation (train, images/255): mean " + ", ".join(f"{m:.6f}" for m in ds.mean)
                 + "; std " + ", ".join(f"{s:.6f}" for s in ds.std))
    if ds.groups is not None:
        lines.append(groups_text(ds.groups))
    lines.append(f"fingerprint: {ds.fingerprint}")
    return "\n".join(lines)
