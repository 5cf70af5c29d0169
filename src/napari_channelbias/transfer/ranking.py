"""Rank candidate initialisations by their robustness on the user's own (unlabelled) volume.

One run: sample ``n`` windows (:mod:`.sampling`), draw three augmentations per window (:mod:`.augment`)
-- the query ``q~_i``, the positive ``k_i+`` and the view ``v_i`` that serves as the *negative of the
next window*: ``k_i- = v_{(i+1) mod n}`` (the windows are drawn in random order, so this is a random
pairing that never pairs a window with itself). Every candidate sees exactly the same views, so the
differences between candidates are not sampling noise between runs. For each candidate the encoder
its init gives (:mod:`.representation`) maps the views to features and :mod:`.score` turns them into
rho with its standard error over the windows.

Seeded and deterministic: the seed fixes the windows, the augmentations and the random candidate's
weights; the same candidates on the same volume give the same scores (on one machine and thread count).

The thesis's warning (ch. 4.2, "Limitations"): a randomly initialised encoder often scores high
without transferring well. The random candidate is therefore scored but ranked apart, never "best".
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..devices import resolve_device
from ..errors import ConfigError
from ..events import Progress, run_to_end
from ..io.checks import parse_slices
from ..models.spec import CHECKPOINT_PREFIX, RANDOM_INIT, WEIGHT_INITS, normalise_init_name
from ..windowing import n_slices_along
from .augment import apply_jitter, augmentation_settings, draw_jitter
from .representation import build_encoder, candidate_spec, encoder_features
from .sampling import WindowSample, fit_patch_size, sample_windows
from .score import EPSILON, paired_difference, robustness

TASK = "rank-inits"

#: The candidates ranked by default: every weight-adapting init, and random (ranked apart).
DEFAULT_INITS: tuple[str, ...] = (*WEIGHT_INITS, RANDOM_INIT)

RANDOM_WARNING = (
    "random weights often score a high robustness without transferring well (the thesis's caveat); "
    "they are shown apart and never ranked best"
)


@dataclass
class RankConfig:
    """Settings of one ranking (all JSON-able)."""

    inits: list[str] = field(default_factory=lambda: list(DEFAULT_INITS))
    checkpoints: list[str] = field(default_factory=list)
    arch: str = "unet"
    encoder: str = "efficientnet-lite0"
    window: int = 3
    weights_path: str | None = None
    pooled: bool = False
    windows: int = 64
    patch_size: int = 128
    seed: int = 0
    epsilon: float = EPSILON
    slices: str | None = None
    padding: str = "mirror"
    axis: int = 0
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"mode": "percentile", "low": 0.5, "high": 99.5}
    )
    batch_size: int = 16
    device: str = "auto"
    num_threads: int | None = None

    def candidates(self) -> list[str]:
        """Canonical init names, checkpoints as ``checkpoint:PATH``, duplicates dropped, order kept."""
        names = [normalise_init_name(n) for n in self.inits]
        names += [normalise_init_name(CHECKPOINT_PREFIX + str(p)) for p in self.checkpoints]
        unique = list(dict.fromkeys(names))
        if not unique:
            raise ConfigError("no candidates to rank; give at least one init or checkpoint")
        return unique

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CandidateScore:
    """One candidate's score; ``rank`` is 1-based among the pretrained candidates (None for random)."""

    init: str
    rho: float
    se: float
    n: int
    mean_d_pos: float
    mean_d_neg: float
    is_random: bool
    rank: int | None = None
    seconds: float = 0.0
    weights_source: str = ""
    losses: list[float] = field(default_factory=list, repr=False)
    """Per-window triplet losses, in the order of the sampled windows (the same for every candidate)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RankResult:
    """Scores of all candidates, pretrained ones ranked, the best pretrained one named."""

    scores: list[CandidateScore]
    config: dict[str, Any]
    sample: dict[str, Any]
    augmentation: dict[str, Any]
    warning: str = RANDOM_WARNING

    @property
    def pretrained(self) -> list[CandidateScore]:
        """Pretrained candidates, best first."""
        return sorted((s for s in self.scores if not s.is_random), key=lambda s: s.rank or 0)

    @property
    def random(self) -> list[CandidateScore]:
        return [s for s in self.scores if s.is_random]

    def score_of(self, init: str) -> CandidateScore | None:
        """The score of one candidate by init name, or None if it was not scored."""
        return next((s for s in self.scores if s.init == init), None)

    @property
    def best(self) -> str | None:
        """The init name of the highest-rho pretrained candidate (None if only random was scored)."""
        ranked = self.pretrained
        return ranked[0].init if ranked else None

    def versus_best(self, init: str) -> tuple[float, float]:
        """``rho(init) - rho(best)`` with its paired standard error (NaN without per-window losses)."""
        best, score = self.score_of(self.best or ""), self.score_of(init)
        if best is None or score is None or not best.losses or len(best.losses) != len(score.losses):
            return math.nan, math.nan
        return paired_difference(score.losses, best.losses)

    def rows(self) -> list[dict[str, Any]]:
        """One row per candidate, pretrained by rank, then random: for CSV and tables."""
        rows = []
        for s in [*self.pretrained, *self.random]:
            delta, delta_se = self.versus_best(s.init)
            rows.append({
                "rank": s.rank if s.rank is not None else "apart", "init": s.init, "rho": s.rho, "se": s.se,
                "delta_best": delta, "delta_best_se": delta_se, "n_windows": s.n, "mean_d_pos": s.mean_d_pos,
                "mean_d_neg": s.mean_d_neg, "best": s.init == self.best, "seconds": s.seconds,
            })
        return rows

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankResult:
        """Inverse of :meth:`to_dict` (e.g. a ``rank-inits.json`` read back)."""
        return cls(scores=[CandidateScore(**s) for s in data["scores"]], config=dict(data["config"]),
                   sample=dict(data["sample"]), augmentation=dict(data["augmentation"]),
                   warning=str(data.get("warning", RANDOM_WARNING)))

    def to_dict(self) -> dict[str, Any]:
        return {"best": self.best, "scores": [s.to_dict() for s in self.scores], "config": self.config,
                "sample": self.sample, "augmentation": self.augmentation, "warning": self.warning}


def make_views(sample: WindowSample, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query, positive and negative views ``(n, K, P, P)`` of a sample (deterministic per seed)."""
    # A generator of its own, so the augmentations do not depend on how many draws the sampling made.
    rng = np.random.default_rng([seed, 1])
    views = np.empty((3, *sample.windows.shape), dtype=np.float32)
    for i, w in enumerate(sample.windows):
        for v in range(3):
            views[v, i] = apply_jitter(w, draw_jitter(rng))
    q, k_pos, other = views
    return q, k_pos, np.roll(other, -1, axis=0)  # k_i- = the third view of window i + 1


def rank(scores: list[CandidateScore]) -> list[CandidateScore]:
    """Give the pretrained candidates ranks 1.. by rho (descending; ties keep the input order)."""
    order = sorted((s for s in scores if not s.is_random), key=lambda s: -s.rho)
    for r, s in enumerate(order, start=1):
        s.rank = r
    return scores


def rank_inits_events(volume: Any, config: RankConfig | None = None) -> Generator[Progress, None, RankResult]:
    """Score every candidate on ``volume``; yield :class:`Progress` per candidate; return a :class:`RankResult`.

    Raises
    ------
    ConfigError
        For an unknown init, too few windows, a bad patch size or slice range.
    CheckpointError, WeightsUnavailableError
        From the model factory, for a checkpoint that does not fit or missing ImageNet weights.
    """
    import torch  # heavy: imported when a ranking runs, not when the module is read


    config = config or RankConfig()
    candidates = config.candidates()
    device = resolve_device(config.device)
    slices = parse_slices(config.slices, n_slices_along(volume, config.axis)) if config.slices else None
    specs = [candidate_spec(c, config.arch, config.encoder, config.window, config.weights_path) for c in candidates]
    total = len(candidates)
    old_threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        sample = sample_windows(volume, config.windows, config.patch_size, config.window, config.padding,
                                config.axis, slices, config.seed, config.normalization)
        q, k_pos, k_neg = make_views(sample, config.seed)
        yield Progress(TASK, 0, total, f"sampled {len(sample.positions)} windows of {config.patch_size} px "
                                       f"({sample.crops_read} crops read)")
        scores: list[CandidateScore] = []
        for done, (name, spec) in enumerate(zip(candidates, specs, strict=True), start=1):
            start = time.perf_counter()
            encoder, provenance = build_encoder(spec, seed=config.seed)
            feats = [encoder_features(encoder, v, config.pooled, config.batch_size, device) for v in (q, k_pos, k_neg)]
            del encoder
            r = robustness(*feats, epsilon=config.epsilon)
            scores.append(CandidateScore(
                init=name, rho=r.rho, se=r.se, n=r.n, mean_d_pos=r.mean_d_pos, mean_d_neg=r.mean_d_neg,
                is_random=spec.init == RANDOM_INIT, seconds=time.perf_counter() - start,
                weights_source=str(provenance.get("weights_source", "")), losses=list(r.losses),
            ))
            yield Progress(TASK, done, total, f"{name}: rho = {r.rho:.4f} ± {r.se:.4f}")
    finally:
        if config.num_threads is not None:
            torch.set_num_threads(old_threads)
    return RankResult(scores=rank(scores), config=config.to_dict(), sample=sample.to_dict(),
                      augmentation=augmentation_settings())


def rank_spec_inits_events(
    volume: Any, spec: dict[str, Any], inits: list[str], seed: int = 0, slices: str | None = None,
    device: str = "auto",
) -> Generator[Progress, None, RankResult]:
    """Rank ``inits`` as models like ``spec`` (a :class:`~napari_channelbias.models.spec.ModelSpec` dict).

    What ``channelbias study --rank-inits`` runs before training its arms; the other settings are the
    defaults of ``rank-inits``, the patch shrunk to fit small planes.
    """
    config = RankConfig(
        patch_size=fit_patch_size(tuple(volume.shape), 0, RankConfig.patch_size),
        inits=list(inits), arch=str(spec.get("arch", "unet")), encoder=str(spec.get("encoder", "efficientnet-lite0")),
        window=int(spec.get("window", 3)), weights_path=spec.get("weights_path"), seed=int(seed), slices=slices,
        device=device,
    )
    return (yield from rank_inits_events(volume, config))


def rank_inits(volume: Any, config: RankConfig | None = None, on_event: Any = None) -> RankResult:
    """:func:`rank_inits_events` run to the end; ``on_event`` receives every event."""
    return run_to_end(rank_inits_events(volume, config), on_event)
