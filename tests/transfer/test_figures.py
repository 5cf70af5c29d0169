"""The ranking figure, drawn on a plain Agg Axes."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from napari_channelbias.transfer.figures import BEST_COLOR, OTHER_COLOR, RANDOM_COLOR, draw_ranking
from napari_channelbias.transfer.ranking import CandidateScore, RankResult, rank


def _axes():
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def test_bars_in_rank_order_best_highlighted_random_apart():
    scores = [
        CandidateScore("imagenet", 0.55, 0.02, 8, 0.1, 0.2, False),
        CandidateScore("random", 0.80, 0.01, 8, 0.0, 0.3, True),
        CandidateScore("checkpoint:/runs/snemi.pt", 0.62, 0.01, 8, 0.1, 0.2, False),
    ]
    result = RankResult(scores=rank(scores), config={"pooled": True}, sample={"n": 8}, augmentation={})
    fig, ax = _axes()
    draw_ranking(ax, result)
    fig.canvas.draw()
    bars = ax.patches
    assert [round(b.get_width(), 4) for b in bars] == [0.62, 0.55, 0.80]
    assert [to_hex(b.get_facecolor()) for b in bars] == [BEST_COLOR, OTHER_COLOR, RANDOM_COLOR]
    assert bars[2].get_hatch() == "//" and not bars[0].get_hatch()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["ckpt:snemi.pt", "imagenet", "random (apart)"]
    gap = bars[2].get_y() - bars[1].get_y()
    assert gap > bars[1].get_y() - bars[0].get_y()  # the random bar sits after a gap
    assert "never ranked best" in ax.get_xlabel() and "pooled" in ax.get_title()


def test_without_random_there_is_no_caveat():
    result = RankResult(scores=rank([CandidateScore("mirror", 0.5, float("nan"), 1, 0, 0, False)]),
                        config={}, sample={"n": 1}, augmentation={})
    fig, ax = _axes()
    draw_ranking(ax, result)
    assert len(ax.patches) == 1 and "random" not in ax.get_xlabel()
