"""What the experiments' figures share, so that each reads at the size it is saved: font sizes, legends that
stay off the data, text colours that read on any cell, and the class names behind a dataset's abbreviations.

The drawing itself stays in each experiment's ``plot``; this module holds only what several of them use.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pyodl.data.watch import EXERCISES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

# Points. A README or results.md shows a saved figure at roughly its pixel size, often smaller: below 9 pt at
# 100-110 dpi a legend's words take squinting (the 6-7 pt legends they replace did). matplotlib's own default,
# 10 pt, serves titles and axis labels.
LEGEND_FONT_SIZE = 9
SMALL_FONT_SIZE = 9  # cell counts, captions


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend: experiments run headless (CI, Ray workers, ssh)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(width: float, height: float, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure with constrained layout, which keeps titles, labels, colour bars and outside legends inside
    it (tight_layout clipped the confusion matrices' titles)."""
    return pyplot().subplots(figsize=(width, height), layout="constrained", **kwargs)


def save(fig: Figure, path: Path, dpi: int = 100) -> None:
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def legend_right(ax: Axes, **kwargs: Any) -> Legend:
    """The legend to the right of the axes: wherever the curves go, it never hides one."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=LEGEND_FONT_SIZE,
                     **kwargs)


def relative_luminance(rgb: tuple[float, ...]) -> float:
    """WCAG 2's relative luminance of an sRGB colour (channels 0..1; alpha ignored)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG 2's contrast ratio, 1 (none) to 21 (black on white); 4.5 is its minimum for normal text."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: tuple[float, ...]) -> str:
    """Black or white, whichever contrasts more with ``background``: on any colour that gives at least 4.58:1
    (a fixed black read 1.5:1 on the darkest blue of a confusion matrix)."""
    black, white = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return "black" if contrast_ratio(background, black) >= contrast_ratio(background, white) else "white"


def class_key(classes: list[str]) -> str | None:
    """What a dataset's abbreviated class names stand for, as a caption ("PEN: pendulum; ..."), or None when
    the names are not abbreviations pyodl knows (a user's table, WISDM's full words)."""
    if classes != list(EXERCISES):
        return None
    return "; ".join(f"{c}: {EXERCISES[c]}" for c in classes)


def wrap(text: str, width_inches: float, font_size: float = SMALL_FONT_SIZE) -> str:
    """``text`` in lines that fit ``width_inches`` at ``font_size`` (DejaVu Sans's characters average about
    0.6 em; a margin is left for the figure's edge), broken between its "; "-separated entries, never inside
    one ("internal rotation (resistance band)" stays whole)."""
    width = max(20, int((width_inches - 0.4) * 72 / (0.6 * font_size)))
    lines: list[str] = []
    for entry in text.split("; "):
        if lines and len(lines[-1]) + 2 + len(entry) <= width:
            lines[-1] += "; " + entry
        else:
            if lines:
                lines[-1] += ";"
            lines.append(entry)
    return "\n".join(lines)


def layout_problems(fig: Figure, min_legend_points: float = LEGEND_FONT_SIZE) -> list[str]:
    """What a reader of ``fig`` would stumble on that can be measured: an axes (its title, labels, tick labels)
    or a figure text cut by the figure's edge, legend text smaller than ``min_legend_points``, a legend over a
    title or an axis label. The tests of every figure pyodl writes ask it for an empty list."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    edge = fig.bbox.padded(1.0)  # a pixel of antialiasing is no clipping

    def inside(box: Any) -> bool:
        return bool(edge.x0 <= box.x0 and edge.y0 <= box.y0 and box.x1 <= edge.x1 and box.y1 <= edge.y1)

    def name(ax: Any) -> str:
        return repr(ax.get_title() or ax.get_ylabel() or ax.get_label() or "axes")

    problems: list[str] = []
    for ax in fig.axes:
        if ax.get_visible() and not inside(ax.get_tightbbox(renderer)):
            problems.append(f"axes {name(ax)}: its title, labels or tick labels are cut by the figure's edge")
    words = [t for t in fig.texts if t.get_visible() and t.get_text().strip()]
    for t in words:
        if not inside(t.get_window_extent(renderer)):
            problems.append(f"{t.get_text()[:40]!r} is cut by the figure's edge")
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    labels: list[Text] = [*words, *(t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)
                                    if t.get_visible() and t.get_text().strip())]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if not inside(box):
            problems.append("a legend is cut by the figure's edge")
        for t in legend.get_texts():
            if t.get_fontsize() < min_legend_points:
                problems.append(f"legend entry {t.get_text()!r} is {t.get_fontsize():g} pt (< {min_legend_points:g})")
        for t in labels:
            if box.overlaps(t.get_window_extent(renderer)):
                problems.append(f"a legend covers {t.get_text()[:40]!r}")
    return problems
