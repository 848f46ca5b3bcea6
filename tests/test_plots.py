"""The AUC-vs-parameters plot stays readable with many close points: the rank labels overlap neither each other
nor any marker, stay inside the axes, and the key beside the axes shows every full method name inside the
figure. Geometry is checked on the rendered matplotlib artists (not on the placement arithmetic)."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.text import Text

from leanrec.leaderboard import Row
from leanrec.plots import Box, auc_vs_params, auc_vs_params_figure, label_box, place_labels


def _rows(n: int, seed: int = 0) -> list[Row]:
    """n rows like a Criteo table: most in a tight cluster (params ~1e6, AUC ~0.70), a few far out."""
    rng = np.random.default_rng(seed)
    families = ["backbone", "selector", "pruning", "model", "dimension-search"]
    rows = []
    for i in range(n):
        far = i % 9 == 0
        params = 10 ** (rng.uniform(4.5, 7.3) if far else rng.normal(6.0, 0.08))
        auc = rng.normal(0.70, 0.02 if far else 0.006)
        rows.append(Row(dataset="d", variant=f"method-{i}[keep_ratio=0.25,estimator=shuffle]" if i % 4 == 0
                        else f"m{i}", family=families[i % 5], is_baseline=False, seeds=[0, 1, 2], failed=0,
                        auc=list(auc + rng.normal(0, 0.01, 3)), logloss=[0.4] * 3, gauc=[], params=params,
                        emb_params=params, backbone_params=0.0, flops=0.0, lat1_us=0.0, lat4096_us=0.0,
                        train_s=1.0, fields=float("nan"), dims=float("nan"), rank=i + 1))
    return rows


def _boxes(fig, texts):
    """Rendered boxes of the texts themselves (an annotation's own box would include its leader line)."""
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(t, renderer) for t in texts]


def test_labels_do_not_overlap_and_nothing_is_clipped(tmp_path):
    rows = _rows(60)
    fig = auc_vs_params_figure(rows, "d: AUC vs parameters")
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.texts]
    assert sorted(t.get_text() for t in labels) == sorted(str(r.rank) for r in rows)
    boxes = _boxes(fig, labels)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    axes_box = ax.get_window_extent()
    markers = [ax.transData.transform((r.params, r.mean("auc"))) for r in rows]
    for box in boxes:
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
        assert not any(box.contains(x, y) for x, y in markers)  # no number sits on a point
    fig_box = fig.bbox
    key = [t for t in fig.texts]
    assert {r.variant for r in rows} <= {t.get_text().split(None, 1)[1] for t in key[1:]}
    for box in _boxes(fig, key):
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0 and box.y1 <= fig_box.y1
    auc_vs_params(rows, tmp_path / "p.png", "d")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_rows_no_file(tmp_path):
    auc_vs_params([], tmp_path / "p.png", "d")
    assert not (tmp_path / "p.png").exists()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(100, 900), st.floats(100, 500)), min_size=1, max_size=12))
def test_place_labels_finds_free_spots_when_there_is_room(anchors):
    """Few small labels in a large area: every label is inside the area, clear of every marker and of the
    other labels (checked by brute force over all pairs)."""
    sizes = [(14.0, 9.0)] * len(anchors)
    area = Box(0, 0, 1000, 600)
    markers = [Box(x - 4, y - 4, x + 4, y + 4) for x, y in anchors]
    offsets = place_labels(anchors, sizes, area, markers, radii=[6 * k for k in range(1, 30)])
    boxes = [label_box(x + dx, y + dy, w, h, dx, dy) for (x, y), (dx, dy), (w, h) in zip(anchors, offsets, sizes)]
    for b in boxes:
        assert b.inside(area) and not any(b.overlaps(m) for m in markers)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
