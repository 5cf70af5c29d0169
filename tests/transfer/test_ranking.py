"""Ranking candidates: deterministic, paired views, random apart, checkpoints as candidates."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.errors import ConfigError
from napari_channelbias.events import Progress
from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sample_data import make_sample
from napari_channelbias.transfer.augment import apply_jitter, draw_jitter
from napari_channelbias.transfer.ranking import (
    DEFAULT_INITS,
    CandidateScore,
    RankConfig,
    RankResult,
    make_views,
    rank,
    rank_inits,
    rank_inits_events,
)
from napari_channelbias.transfer.sampling import sample_windows


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    image, _ = make_sample(shape=(6, 128, 128), seed=0)
    return image


def _tiny(**kw) -> RankConfig:
    return RankConfig(**{"windows": 6, "patch_size": 64, "device": "cpu", "num_threads": 1, **kw})


def test_same_candidates_same_volume_same_scores(volume):
    config = _tiny(inits=["imagenet", "uniform-green", "random"])
    events: list = []
    a = rank_inits(volume, config, on_event=events.append)
    b = rank_inits(volume, config)
    assert [(s.init, s.rho, s.se) for s in a.scores] == [(s.init, s.rho, s.se) for s in b.scores]
    assert all(isinstance(e, Progress) for e in events) and [e.done for e in events] == [0, 1, 2, 3]
    assert a.sample["n"] == 6 and a.sample["crops_read"] <= 18
    assert all(-1.5 <= s.rho <= 1.0 and s.se > 0 and s.n == 6 for s in a.scores)
    other_seed = rank_inits(volume, _tiny(inits=["imagenet"], seed=1))
    assert other_seed.scores[0].rho != a.scores[0].rho  # the seed changes the windows and views


def test_random_is_ranked_apart_and_never_best():
    scores = [
        CandidateScore("imagenet", 0.55, 0.01, 8, 0.1, 0.2, False),
        CandidateScore("random", 0.90, 0.01, 8, 0.0, 0.4, True),
        CandidateScore("mirror", 0.60, 0.01, 8, 0.1, 0.2, False),
        CandidateScore("average", 0.60, 0.01, 8, 0.1, 0.2, False),
    ]
    result = RankResult(scores=rank(scores), config={}, sample={}, augmentation={})
    assert [s.init for s in result.pretrained] == ["mirror", "average", "imagenet"]  # a tie keeps input order
    assert result.best == "mirror" and result.random[0].rank is None
    rows = result.rows()
    assert [r["init"] for r in rows] == ["mirror", "average", "imagenet", "random"]
    assert rows[-1]["rank"] == "apart" and rows[0]["best"] and not rows[-1]["best"]
    assert RankResult.from_dict(result.to_dict()).to_dict() == result.to_dict()
    only_random = RankResult(scores=rank([CandidateScore("random", 0.9, 0.0, 2, 0, 0, True)]), config={},
                             sample={}, augmentation={})
    assert only_random.best is None


def test_negatives_are_the_next_window_and_positives_the_same(volume):
    sample = sample_windows(volume, n=5, patch_size=64, window=3, seed=0)
    q, pos, neg = make_views(sample, seed=0)
    rng = np.random.default_rng([0, 1])  # the views' own generator: three draws per window, in order
    jitters = [[draw_jitter(rng) for _ in range(3)] for _ in range(5)]
    for i in range(5):
        assert np.array_equal(q[i], apply_jitter(sample.windows[i], jitters[i][0]))
        assert np.array_equal(pos[i], apply_jitter(sample.windows[i], jitters[i][1]))
        assert np.array_equal(neg[i], apply_jitter(sample.windows[(i + 1) % 5], jitters[(i + 1) % 5][2]))


def test_untrained_checkpoint_scores_like_its_init(volume, tmp_path):
    model, provenance = build_model(ModelSpec(init="uniform-green"))
    path = save_checkpoint(tmp_path / "ug.pt", model, ModelCard(
        model=provenance["spec"], normalization={"mode": "percentile", "low": 0.5, "high": 99.5, "lo": 0, "hi": 1}))
    result = rank_inits(volume, _tiny(inits=["uniform-green"], checkpoints=[str(path)]))
    by_init = {s.init: s for s in result.scores}
    assert by_init[f"checkpoint:{path}"].rho == by_init["uniform-green"].rho  # same encoder weights, same views
    assert "checkpoint" in by_init[f"checkpoint:{path}"].weights_source


def test_candidates_are_canonical_and_unique():
    config = RankConfig(inits=["Uniform_Green", "uniform-green", "random"], checkpoints=["a.pt"])
    assert config.candidates() == ["uniform-green", "random", "checkpoint:a.pt"]
    assert RankConfig().candidates() == list(DEFAULT_INITS)
    with pytest.raises(ConfigError, match="no candidates"):
        RankConfig(inits=[]).candidates()
    with pytest.raises(ConfigError, match="unknown init"):
        RankConfig(inits=["resnet"]).candidates()


def test_bad_window_count_fails_before_any_model_is_built(volume):
    gen = rank_inits_events(volume, _tiny(inits=["imagenet"], windows=1))
    with pytest.raises(ConfigError, match="at least 2 windows"):
        next(gen)
