"""First-layer init strategies: every formula against hand-computed tensors, K = 3, 5, 7."""

from __future__ import annotations

import math

import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.init_strategies import INIT_STRATEGIES, adapt_first_conv_weight
from napari_channelbias.models.spec import SYMMETRIC_INITS, normalise_init_name, valid_init_names

# One output filter, 1x1 kernel, RGB = 1, 2, 4: every expected value below is worked out by hand.
R, G, B = 1.0, 2.0, 4.0
W_RGB = torch.tensor([R, G, B], dtype=torch.float64).reshape(1, 3, 1, 1)

EXPECTED: dict[tuple[str, int], list[float]] = {
    ("imagenet", 3): [R, G, B],
    ("imagenet", 5): [0.6 * R, 0.6 * G, 0.6 * B, 0.6 * R, 0.6 * G],  # cyclic, times 3/5
    ("imagenet", 7): [x * 3 / 7 for x in (R, G, B, R, G, B, R)],
    ("uniform-red", 3): [R] * 3,
    ("uniform-red", 5): [R] * 5,
    ("uniform-red", 7): [R] * 7,
    ("uniform-green", 3): [G] * 3,
    ("uniform-green", 5): [G] * 5,
    ("uniform-green", 7): [G] * 7,
    ("uniform-blue", 3): [B] * 3,
    ("uniform-blue", 5): [B] * 5,
    ("uniform-blue", 7): [B] * 7,
    ("average", 3): [7 / 3] * 3,
    ("average", 5): [7 / 3] * 5,
    ("average", 7): [7 / 3] * 7,
    # mirror: V = imagenet-adapted weight, W'[c] = (V[c] + V[K-1-c]) / 2
    ("mirror", 3): [(R + B) / 2, G, (R + B) / 2],
    ("mirror", 5): [0.6 * (R + G) / 2, 0.6 * (G + R) / 2, 0.6 * B, 0.6 * (G + R) / 2, 0.6 * (R + G) / 2],
    ("mirror", 7): [x * 3 / 7 for x in (R, (G + B) / 2, (B + G) / 2, R, (G + B) / 2, (B + G) / 2, R)],
}


@pytest.mark.parametrize(("name", "window"), sorted(EXPECTED))
def test_formula_matches_hand_computed_weight(name: str, window: int) -> None:
    adapted = adapt_first_conv_weight(name, W_RGB, window)
    expected = torch.tensor(EXPECTED[(name, window)], dtype=torch.float64).reshape(1, window, 1, 1)
    assert adapted.shape == (1, window, 1, 1)
    torch.testing.assert_close(adapted, expected, rtol=0, atol=1e-12)


def test_every_strategy_has_hand_computed_cases() -> None:
    assert {name for name, _ in EXPECTED} == set(INIT_STRATEGIES)


def test_full_shape_and_per_filter_values() -> None:
    # Two filters with 2x2 kernels: slice c of each filter must be the chosen RGB slice of that filter.
    w = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    green = adapt_first_conv_weight("uniform-green", w, 5)
    assert green.shape == (2, 5, 2, 2)
    assert torch.equal(green[1, 3], torch.tensor([[16.0, 17.0], [18.0, 19.0]]))
    mirror = adapt_first_conv_weight("mirror", w, 3)
    assert torch.equal(mirror[0, 0], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))  # mean of [0..3] and [8..11]
    assert torch.equal(mirror[0, 1], w[0, 1])


def test_input_is_not_modified_and_result_is_a_new_tensor() -> None:
    w = torch.randn(4, 3, 3, 3)
    before = w.clone()
    for name in INIT_STRATEGIES:
        adapted = adapt_first_conv_weight(name, w, 3)
        assert adapted.data_ptr() != w.data_ptr()
        adapted.add_(1.0)
    assert torch.equal(w, before)


@pytest.mark.parametrize("name", list(INIT_STRATEGIES))
def test_dtype_kept_and_no_grad_history(name: str) -> None:
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    adapted = adapt_first_conv_weight(name, w, 5)
    assert adapted.dtype == torch.float64
    assert not adapted.requires_grad


def test_uniform_rescale_matches_hand_computed_norm() -> None:
    # plain uniform-green = [2, 2, 2] (norm sqrt 12); ||W|| = sqrt(1 + 4 + 16) = sqrt 21
    # scaled by sqrt(21 / 12): every entry becomes 2 * sqrt(7 / 4) = sqrt 7
    adapted = adapt_first_conv_weight("uniform-green", W_RGB, 3, rescale=True)
    torch.testing.assert_close(adapted.flatten(), torch.full((3,), math.sqrt(7.0), dtype=torch.float64))


@pytest.mark.parametrize("name", list(INIT_STRATEGIES))
@pytest.mark.parametrize("window", [3, 5, 7])
def test_rescale_gives_the_pretrained_frobenius_norm(name: str, window: int) -> None:
    w = torch.randn(8, 3, 3, 3, dtype=torch.float64)
    adapted = adapt_first_conv_weight(name, w, window, rescale=True)
    torch.testing.assert_close(torch.linalg.vector_norm(adapted), torch.linalg.vector_norm(w))


def test_imagenet_rescale_at_three_channels_changes_nothing() -> None:
    w = torch.randn(8, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(adapt_first_conv_weight("imagenet", w, 3, rescale=True), w)


def test_rescale_of_a_zero_weight_stays_zero() -> None:
    w = torch.zeros(2, 3, 3, 3)
    assert torch.equal(adapt_first_conv_weight("uniform-red", w, 5, rescale=True), torch.zeros(2, 5, 3, 3))


@pytest.mark.parametrize("name", sorted(SYMMETRIC_INITS))
@pytest.mark.parametrize("window", [3, 5, 7])
def test_symmetric_inits_are_exactly_reversal_symmetric(name: str, window: int) -> None:
    adapted = adapt_first_conv_weight(name, torch.randn(6, 3, 3, 3), window)
    assert torch.equal(adapted, adapted.flip(1))


@pytest.mark.parametrize("window", [3, 5, 7])
def test_imagenet_is_not_reversal_symmetric(window: int) -> None:
    adapted = adapt_first_conv_weight("imagenet", W_RGB, window)
    assert not torch.equal(adapted, adapted.flip(1))


def test_window_of_one_follows_the_cyclic_rule() -> None:
    assert adapt_first_conv_weight("imagenet", W_RGB, 1).flatten().tolist() == [3 * R]
    assert adapt_first_conv_weight("uniform-blue", W_RGB, 1).flatten().tolist() == [B]


def test_unknown_name_lists_the_valid_options() -> None:
    with pytest.raises(ConfigError) as info:
        adapt_first_conv_weight("uniform-purple", W_RGB, 3)
    message = str(info.value)
    assert "uniform-purple" in message
    for option in ("imagenet", "uniform-green", "average", "mirror", "random", "checkpoint:PATH"):
        assert option in message


@pytest.mark.parametrize("name", ["random", "checkpoint:runs/a.pt"])
def test_factory_only_inits_are_refused_with_a_pointer(name: str) -> None:
    with pytest.raises(ConfigError, match="build_model"):
        adapt_first_conv_weight(name, W_RGB, 3)


@pytest.mark.parametrize("window", [0, 2, 4, -3, 3.0, True])
def test_bad_window_is_a_config_error(window: object) -> None:
    with pytest.raises(ConfigError, match="odd"):
        adapt_first_conv_weight("imagenet", W_RGB, window)  # type: ignore[arg-type]


def test_weight_without_three_input_channels_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(out, 3, kh, kw\)"):
        adapt_first_conv_weight("imagenet", torch.zeros(4, 1, 3, 3), 3)


def test_name_spellings_are_forgiven() -> None:
    assert normalise_init_name("Uniform_Green") == "uniform-green"
    assert normalise_init_name(" MIRROR ") == "mirror"
    assert normalise_init_name("checkpoint: runs/My Model.pt") == "checkpoint:runs/My Model.pt"
    with pytest.raises(ConfigError, match="needs a path"):
        normalise_init_name("checkpoint:")


def test_valid_names_cover_the_design() -> None:
    assert valid_init_names() == [
        "imagenet",
        "uniform-red",
        "uniform-green",
        "uniform-blue",
        "average",
        "mirror",
        "random",
        "checkpoint:PATH",
    ]
