"""Workspace: unique model names, listeners, and the byte-bounded LRU saliency cache."""

from __future__ import annotations

import gc
import threading
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.workspace import (
    SaliencyCache,
    SaliencyKey,
    Workspace,
    forget_owner,
    image_token,
    suggest_model_name,
    workspace_for,
)


def card(encoder: str = "timm-tf_efficientnet_lite0", init: str = "imagenet", name: str | None = None):
    return SimpleNamespace(model={"encoder": encoder, "init": init}, name=name)


def maps(value: float, k: int = 3, h: int = 4, w: int = 4) -> np.ndarray:
    return np.full((k, h, w), value, dtype=np.float32)  # 3*4*4*4 = 192 bytes


def key(z: int, model: str = "m", method: str = "full-output", **params) -> SaliencyKey:
    return SaliencyKey.make(model, method, params, image="img", z=z)


# ------------------------------------------------------------------------------------------------ names
def test_suggested_names_are_short_encoder_plus_init():
    assert suggest_model_name(card()) == "lite0-imagenet"
    assert suggest_model_name(card(init="uniform-green")) == "lite0-uniform-green"
    assert suggest_model_name(card("resnet18", "random")) == "resnet18-random"
    assert suggest_model_name(card(init="checkpoint:/data/run3/best.pt")) == "lite0-ckpt-best"
    assert suggest_model_name(card(name="my model")) == "my model"
    assert suggest_model_name({"encoder": "efficientnet-lite0", "init": "mirror"}) == "lite0-mirror"
    assert suggest_model_name({"model": {"encoder": "resnet34", "init": "average"}, "name": None}) == (
        "resnet34-average"
    )


def test_add_model_makes_names_unique_and_keeps_order():
    ws = Workspace()
    net = torch.nn.Identity()
    assert ws.add_model(None, net, card()) == "lite0-imagenet"
    assert ws.add_model(None, net, card(init="uniform-green"), path="/tmp/a.pt") == "lite0-uniform-green"
    assert ws.add_model(None, net, card()) == "lite0-imagenet-2"
    assert ws.add_model("lite0-imagenet", net, card()) == "lite0-imagenet-3"
    assert ws.names() == ["lite0-imagenet", "lite0-uniform-green", "lite0-imagenet-2", "lite0-imagenet-3"]
    entry = ws.get("lite0-uniform-green")
    assert entry.model is net and str(entry.path) == "/tmp/a.pt" and entry.name == "lite0-uniform-green"
    assert "lite0-imagenet-2" in ws and len(ws) == 4


def test_unknown_model_error_lists_loaded_names():
    ws = Workspace()
    ws.add_model("a", torch.nn.Identity(), card())
    with pytest.raises(ConfigError, match=r"no model called 'b' is loaded \(loaded: a\)"):
        ws.get("b")


def test_remove_notifies_and_evicts_that_models_maps():
    ws = Workspace()
    events: list[tuple[str, str]] = []
    unsubscribe = ws.subscribe(lambda event, name: events.append((event, name)))
    ws.add_model("a", torch.nn.Identity(), card())
    ws.add_model("b", torch.nn.Identity(), card())
    ws.saliency.put(key(0, model="a"), maps(1))
    ws.saliency.put(key(0, model="b"), maps(2))
    removed = ws.remove("a")
    assert removed.name == "a"
    assert ws.names() == ["b"]
    assert ws.saliency.keys() == [key(0, model="b")]
    unsubscribe()
    ws.remove("b")
    assert events == [("added", "a"), ("added", "b"), ("removed", "a")]


def test_clear_forgets_everything():
    ws = Workspace()
    ws.add_model("a", torch.nn.Identity(), card())
    ws.saliency.put(key(0), maps(1))
    ws.clear()
    assert len(ws) == 0 and len(ws.saliency) == 0 and ws.saliency.nbytes == 0


# ------------------------------------------------------------------------------------------------ cache
def test_keys_ignore_parameter_order_and_int_valued_floats():
    a = SaliencyKey.make("m", "occlusion", {"patch": 16, "target": 1}, image="img", z=3)
    b = SaliencyKey.make("m", "occlusion", {"target": 1, "patch": 16.0}, image="img", z=3)
    c = SaliencyKey.make("m", "occlusion", {"target": 1, "patch": 8}, image="img", z=3)
    assert a == b and hash(a) == hash(b)
    assert a != c


def test_get_returns_a_read_only_float32_copy():
    cache = SaliencyCache()
    source = np.ones((3, 2, 2), dtype=np.float64)
    assert cache.put(key(0), source)
    source[:] = 5  # changing the caller's array does not change the cache
    got = cache.get(key(0))
    assert got.dtype == np.float32 and np.all(got == 1)
    with pytest.raises(ValueError):
        got[0, 0, 0] = 2
    assert cache.get(key(1)) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_is_bounded_in_bytes_and_evicts_least_recently_used():
    cache = SaliencyCache(max_bytes=3 * 192)  # room for exactly three entries
    for z in range(3):
        cache.put(key(z), maps(z))
    assert cache.nbytes == 3 * 192
    cache.get(key(0))  # slice 0 becomes the most recently used; slice 1 is now the oldest
    cache.put(key(3), maps(3))
    assert cache.keys() == [key(2), key(0), key(3)]
    assert cache.nbytes == 3 * 192
    # replacing an entry does not double count it
    cache.put(key(3), maps(7))
    assert cache.nbytes == 3 * 192 and float(cache.get(key(3))[0, 0, 0]) == 7


def test_an_entry_larger_than_the_budget_is_not_stored():
    cache = SaliencyCache(max_bytes=100)
    assert not cache.put(key(0), maps(1))
    assert len(cache) == 0 and cache.nbytes == 0


def test_evict_by_image():
    cache = SaliencyCache()
    cache.put(SaliencyKey.make("m", "x", {}, image="A", z=0), maps(1))
    cache.put(SaliencyKey.make("m", "x", {}, image="B", z=0), maps(1))
    assert cache.evict(image="A") == 1
    assert [k.image for k in cache.keys()] == ["B"]


def test_maps_must_be_three_dimensional():
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        SaliencyCache().put(key(0), np.zeros((4, 4)))


def test_negative_budget_is_a_config_error():
    with pytest.raises(ConfigError):
        SaliencyCache(max_bytes=-1)


def test_image_token_changes_with_the_array():
    a, b = np.zeros((2, 3, 4)), np.zeros((2, 3, 4))
    assert image_token(a, "em") == image_token(a, "em")
    assert image_token(a, "em") != image_token(b, "em")
    assert image_token(a, "em")[2:] == ((2, 3, 4), "float64")


def test_cache_stays_consistent_under_concurrent_writers():
    cache = SaliencyCache(max_bytes=10 * 192)

    def writer(offset: int) -> None:
        for z in range(200):
            cache.put(key(offset * 1000 + z), maps(z))
            cache.get(key(offset * 1000 + z // 2))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 10 and cache.nbytes == 10 * 192


class Owner:
    """Any weak-referenceable object stands in for a napari viewer here."""


def test_one_workspace_per_owner_and_gone_with_it():
    a, b = Owner(), Owner()
    assert workspace_for(a) is workspace_for(a)
    assert workspace_for(a) is not workspace_for(b)
    workspace = workspace_for(a)
    workspace.add_model("m", object(), None)
    forget_owner(a)
    assert len(workspace) == 0 and workspace_for(a) is not workspace
    held = weakref.ref(workspace_for(b))
    del b
    gc.collect()
    assert held() is None  # the owner held its workspace; nothing else did
