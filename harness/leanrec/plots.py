"""Plots of leaderboard rows: test AUC against parameters with the Pareto front.

Readable with dozens of close points: every point is labelled with its rank number only (short labels never run
off the axes), numbers are placed where they overlap no other number and no marker (a leader line joins a
number moved away from its point), and a key beside the axes gives each number's full method name. Methods are
coloured by family.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from leanrec.records import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from leanrec.leaderboard import Row

_MARKER_PX = 9.0        # marker box side (pixels at the saved dpi) kept clear of labels
_RADII = (5, 9, 14, 20, 27, 35, 44, 54, 66, 80, 96)  # label offsets tried, in points, nearest first
_ANGLES = (45, 135, -45, -135, 0, 180, 90, -90, 22, 158, -22, -158, 68, 112, -68, -112)
DPI = 120
_KEY_PT = 6.5                   # font size of the key (monospace)
_KEY_CHAR_IN = _KEY_PT * 0.62 / 72  # width of one monospace character of the key, inches


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (fewer params and higher AUC is better), sorted by params."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in display pixels."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: "Box") -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, other: "Box") -> bool:
        return self.x0 >= other.x0 and self.x1 <= other.x1 and self.y0 >= other.y0 and self.y1 <= other.y1


def place_labels(anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]], area: Box,
                 obstacles: Sequence[Box] = (), radii: Sequence[float] = _RADII,
                 angles: Sequence[float] = _ANGLES) -> list[tuple[float, float]]:
    """Greedy label placement: for each anchor (pixels) in order, the nearest offset (dx, dy) in pixels (from
    rings of `radii` at `angles`) whose label box of `sizes[i]` (w, h), placed on the side the offset points
    to, lies inside `area` and overlaps no obstacle and no label placed before; when none is free, the
    candidate overlapping the fewest. Returns one offset per anchor."""
    placed: list[Box] = []
    offsets = []
    for (x, y), (w, h) in zip(anchors, sizes):
        best, best_cost = (0.0, 0.0), math.inf
        for r in radii:
            for a in angles:
                dx, dy = r * math.cos(math.radians(a)), r * math.sin(math.radians(a))
                box = label_box(x + dx, y + dy, w, h, dx, dy)
                cost = sum(box.overlaps(o) for o in (*obstacles, *placed)) + (0 if box.inside(area) else 100)
                if cost < best_cost:
                    best, best_cost = (dx, dy), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        offsets.append(best)
        placed.append(label_box(x + best[0], y + best[1], w, h, *best))
    return offsets


def label_box(x: float, y: float, w: float, h: float, dx: float, dy: float) -> Box:
    """The box of a w x h label anchored at (x, y), extending away from its point along (dx, dy)."""
    ha, va = alignment(dx, dy)
    x0 = x if ha == "left" else x - w if ha == "right" else x - w / 2
    y0 = y if va == "bottom" else y - h if va == "top" else y - h / 2
    return Box(x0, y0, x0 + w, y0 + h)


def alignment(dx: float, dy: float) -> tuple[str, str]:
    """Matplotlib (ha, va) of a label offset by (dx, dy) from its point."""
    ha = "left" if dx > 1e-9 else "right" if dx < -1e-9 else "center"
    va = "bottom" if dy > 1e-9 else "top" if dy < -1e-9 else "center"
    return ha, va


def auc_vs_params_figure(rows: Sequence[Row], title: str) -> Figure | None:
    """The AUC-vs-parameters figure of leaderboard rows (None when no row has both), see the module doc."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ceilings = [r for r in rows if r.reference and r.auc]
    rows = [r for r in rows if r.auc and not math.isnan(r.params) and not r.reference]
    if not rows:
        return None
    pts = [(r.params, r.mean("auc")) for r in rows]
    front = set(pareto_front(pts))
    families = sorted({r.family or "other" for r in rows})
    colour = {f: f"C{i % 10}" for i, f in enumerate(families)}
    n_key_cols = 1 if len(rows) <= 36 else 2
    key_lines = math.ceil(len(rows) / n_key_cols)
    key_w = (max(len(r.variant) for r in rows) + 4) * _KEY_CHAR_IN + 0.1  # one key column, inches
    width, height = 8 + key_w * n_key_cols, max(5.5, 0.17 * key_lines + 1.2)
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0.8 / width, 0.1, 7 / width, 0.82))
    for i, r in enumerate(rows):
        ax.errorbar(r.params, r.mean("auc"), yerr=r.std("auc"), fmt="o", ms=5, capsize=2, elinewidth=0.8,
                    color=colour[r.family or "other"], mec="black" if i in front else colour[r.family or "other"],
                    mew=1.2 if i in front else 0.5, zorder=3)
    fx = [pts[i] for i in sorted(front, key=lambda i: pts[i][0])]
    ax.plot([p[0] for p in fx], [p[1] for p in fx], "--", color="black", lw=0.8, zorder=2)
    ax.set_xscale("log")
    xs = [p[0] for p in pts]
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)  # room for labels beside the extreme points
    for c in ceilings:  # a known bound (e.g. a synthetic log's oracle): a line, not a point
        ax.axhline(c.mean("auc"), color="0.35", ls=":", lw=1.0, zorder=1)
        ax.annotate(f"ceiling ({c.variant}) {c.mean('auc'):.4f}", (0.01, c.mean("auc")), xycoords=("axes fraction", "data"),
                    xytext=(0, 2), textcoords="offset points", fontsize=7, color="0.35", va="bottom")
    ys = [p[1] for p in pts] + [c.mean("auc") for c in ceilings]
    span = max(max(ys) - min(ys), 1e-3)
    ax.set_ylim(min(ys) - 0.12 * span, max(ys) + 0.12 * span)  # error bars may run off: the means stay in view
    ax.set_xlabel("parameters of the serving model (log)")
    ax.set_ylabel("test AUC (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="", color=colour[f], label=f) for f in families]
    handles.append(Line2D([], [], marker="o", ls="--", color="black", mfc="white", mec="black", label="Pareto front"))
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9, title="family", title_fontsize=7)

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    anchors = [tuple(ax.transData.transform(p)) for p in pts]
    labels = [str(r.rank) for r in rows]
    sizes = []
    for text in labels:
        probe = fig.text(0, 0, text, fontsize=7)
        ext = probe.get_window_extent(renderer)
        sizes.append((ext.width + 2, ext.height + 1))
        probe.remove()
    ab = ax.get_window_extent(renderer)
    legend = ax.get_legend().get_window_extent(renderer)
    half = _MARKER_PX / 2
    obstacles = [Box(x - half, y - half, x + half, y + half) for x, y in anchors]
    obstacles.append(Box(legend.x0, legend.y0, legend.x1, legend.y1))
    px_per_pt = DPI / 72
    offsets = place_labels(anchors, sizes, Box(ab.x0, ab.y0, ab.x1, ab.y1), obstacles,
                           radii=[r * px_per_pt for r in _RADII])
    for (x, y), text, (dx, dy) in zip(pts, labels, offsets):
        ha, va = alignment(dx, dy)
        far = math.hypot(dx, dy) > 10 * px_per_pt
        ax.annotate(text, (x, y), xytext=(dx / px_per_pt, dy / px_per_pt), textcoords="offset points",
                    fontsize=7, ha=ha, va=va, zorder=4,
                    arrowprops=dict(arrowstyle="-", lw=0.5, color="0.4", shrinkA=0, shrinkB=3) if far else None)

    left = 8 / width
    fig.text(left, 0.95, " # method", fontsize=_KEY_PT, weight="bold", va="top", family="monospace")
    for k, r in enumerate(sorted(rows, key=lambda r: r.rank)):
        col, line = divmod(k, key_lines)
        fig.text(left + col * key_w / width, 0.95 - (line + 1.3) * (0.85 / max(key_lines, 30)),
                 f"{r.rank:>2} {r.variant}", fontsize=_KEY_PT, va="top", family="monospace",
                 color=colour[r.family or "other"])
    return fig


def png_bytes(fig: Figure, *, dpi: int = DPI, metadata: dict | None = None) -> bytes:
    """The figure as PNG bytes (closed afterwards); `metadata` as matplotlib's savefig takes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=metadata)
    plt.close(fig)
    return buf.getvalue()


def auc_vs_params(rows: Sequence[Row], path: Path, title: str) -> None:
    """Write the AUC-vs-parameters PNG of `rows` to `path` (nothing when no row has AUC and parameters)."""
    fig = auc_vs_params_figure(rows, title)
    if fig is not None:
        atomic_write_bytes(path, png_bytes(fig))
