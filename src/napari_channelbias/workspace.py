"""The state shared by the docks of one napari viewer: loaded models and a bounded saliency cache.

The napari plugin has several docks (data, model, train, predict, saliency, the asymmetry panel) that
all work on the same models. This module keeps that state *outside* the widgets and outside Qt, so it
can be tested without a display and so the widgets stay thin: a dock asks the workspace for "the model
called lite0-uniform-green" instead of holding a reference to another dock's attributes.

* Models are stored under unique, human-readable names ("lite0-imagenet", "lite0-uniform-green",
  "lite0-imagenet-2" for a second one). Listeners subscribed with :meth:`Workspace.subscribe` hear about
  additions and removals (the GUI refreshes its model lists from there).
* Saliency maps are expensive (one backward pass per output pixel batch), and the panel shows them for
  the slice under the cursor while the user scrolls back and forth, so they are cached per
  ``(model, method, params, image, z)``. The cache is bounded in *bytes* and evicts the least recently
  used slice first, so a long session on a big volume cannot eat the machine's memory.

Both are safe to use from a worker thread and the GUI thread at the same time (one lock each).

napari builds each dock from its own manifest command, so the main dock and the asymmetry dock are
created separately; both ask :func:`workspace_for` with their viewer and get the same workspace. The
mapping holds its owners weakly: a closed viewer's workspace goes away with it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

DEFAULT_CACHE_BYTES = 512 * 2**20  # 512 MiB: ~170 slices of 3 x 512 x 512 float32 maps


# --------------------------------------------------------------------------------------- saliency cache
def _freeze(value: Any) -> Hashable:
    """Turn nested dicts / lists / arrays of parameters into a hashable, order-independent value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.shape, str(value.dtype), value.tobytes())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 16.0 and 16 are the same patch size
    if isinstance(value, Hashable):
        return value
    return repr(value)


@dataclass(frozen=True)
class SaliencyKey:
    """What identifies one slice's saliency maps.

    Attributes
    ----------
    model
        The model's name in the workspace.
    method
        A saliency method name (``"full-output"``, ``"occlusion"``, ...).
    params
        The method's settings, frozen (see :meth:`make`); two keys with equal settings compare equal
        whatever their order.
    image
        An identity token of the image the window came from (see :func:`image_token`); it must change
        when the data changes.
    z
        The slice index along the model's axis.
    """

    model: str
    method: str
    params: Hashable
    image: Hashable
    z: int

    @classmethod
    def make(
        cls, model: str, method: str, params: Mapping[str, Any] | None, image: Hashable, z: int
    ) -> SaliencyKey:
        """Build a key from a plain parameter dict (window, padding, target, points, seed, ...)."""
        return cls(str(model), str(method), _freeze(dict(params or {})), image, int(z))


def image_token(data: Any, name: str = "") -> tuple[Any, ...]:
    """A cheap identity for an image array: the object's id plus name, shape and dtype.

    The id alone could be reused by a new array after the old one is freed; adding shape and dtype
    makes an accidental hit require an array of the very same size replacing the old one, and the GUI
    clears a model's or image's entries when a layer is removed (:meth:`SaliencyCache.evict`).
    """
    shape = tuple(int(s) for s in getattr(data, "shape", ()))
    return (name, id(data), shape, str(getattr(data, "dtype", "")))


class SaliencyCache:
    """A thread-safe LRU cache of per-slice saliency maps ``(K, H, W)``, bounded in bytes.

    Parameters
    ----------
    max_bytes
        The most bytes of maps kept; the least recently used slices are dropped beyond it. A single
        entry larger than this is not cached at all.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ConfigError(f"the saliency cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[SaliencyKey, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[SaliencyKey]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def get(self, key: SaliencyKey) -> np.ndarray | None:
        """The maps for ``key`` (read-only), or None; a hit makes the entry the most recently used."""
        with self._lock:
            maps = self._entries.get(key)
            if maps is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return maps

    def put(self, key: SaliencyKey, maps: Any) -> bool:
        """Store a copy of ``maps`` (made float32 and read-only) under ``key``.

        Returns
        -------
        bool
            False when the maps alone exceed :attr:`max_bytes` and were therefore not stored.
        """
        stored = np.array(maps, dtype=np.float32, copy=True)
        if stored.ndim != 3:
            raise ValueError(f"saliency maps must be (K, H, W), got shape {stored.shape}")
        stored.flags.writeable = False  # consumers share the array; nobody may change the cached copy
        with self._lock:
            self._drop(key)
            if stored.nbytes > self.max_bytes:
                return False
            self._entries[key] = stored
            self._nbytes += stored.nbytes
            while self._nbytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
        return True

    def _drop(self, key: SaliencyKey) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._nbytes -= old.nbytes

    def evict(self, model: str | None = None, image: Hashable | None = None) -> int:
        """Drop every entry of ``model`` and/or ``image`` (both None: everything); returns how many."""
        with self._lock:
            doomed = [
                k for k in self._entries
                if (model is None or k.model == model) and (image is None or k.image == image)
            ]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def clear(self) -> None:
        """Drop everything."""
        self.evict()


# ----------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class LoadedModel:
    """A model held by the workspace, with the card that says how to apply it."""

    name: str
    model: Any  # torch.nn.Module; typed loosely so this module does not import torch
    card: Any  # checkpoints.ModelCard
    path: Path | None = None


def _short_encoder(encoder: str) -> str:
    """``timm-tf_efficientnet_lite0`` -> ``lite0``, ``efficientnet-b0`` -> ``b0``; others unchanged."""
    short = encoder
    for prefix in ("timm-", "tf_", "efficientnet_", "efficientnet-"):
        if short.startswith(prefix):
            short = short[len(prefix):]
    return short or encoder


def suggest_model_name(card: Any) -> str:
    """A readable default name for a model: the card's own name, else ``<encoder>-<init>``.

    ``card`` is a ModelCard, a card dict, or a model-spec dict (``{"encoder": ..., "init": ...}``).
    ``checkpoint:/some/path.pt`` inits are shortened to ``ckpt-<file stem>``.
    """
    if isinstance(card, Mapping):
        name = card.get("name")
        model = card.get("model", card)
    else:
        name = getattr(card, "name", None)
        model = getattr(card, "model", None) or {}
    if name:
        return str(name)
    encoder = _short_encoder(str(model.get("encoder", "model")))
    init = str(model.get("init", "")).strip()
    if init.startswith("checkpoint:"):
        init = "ckpt-" + Path(init.split(":", 1)[1]).stem
    return f"{encoder}-{init}" if init else encoder


Listener = Callable[[str, str], None]


class Workspace:
    """Named models and the saliency cache shared by the docks of one viewer.

    Listeners receive ``(event, name)`` with ``event`` in ``{"added", "removed"}``; they are called on
    the thread that made the change (the GUI makes changes from its own thread).
    """

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.saliency = SaliencyCache(cache_bytes)

    # -- models ------------------------------------------------------------------------------------
    def unique_name(self, name: str) -> str:
        """``name`` itself if free, else ``name-2``, ``name-3``, ..."""
        base = name.strip() or "model"
        with self._lock:
            if base not in self._models:
                return base
            i = 2
            while f"{base}-{i}" in self._models:
                i += 1
            return f"{base}-{i}"

    def add_model(self, name: str | None, model: Any, card: Any, path: str | Path | None = None) -> str:
        """Keep ``model`` under a unique name derived from ``name`` (or the card); returns the name used."""
        with self._lock:
            final = self.unique_name(name or suggest_model_name(card))
            self._models[final] = LoadedModel(final, model, card, Path(path) if path is not None else None)
        self._notify("added", final)
        return final

    @property
    def models(self) -> dict[str, LoadedModel]:
        """A snapshot of the loaded models by name, in the order they were added."""
        with self._lock:
            return dict(self._models)

    def names(self) -> list[str]:
        """The loaded models' names, in the order they were added."""
        with self._lock:
            return list(self._models)

    def get(self, name: str) -> LoadedModel:
        """The model called ``name``; a ConfigError listing the loaded names otherwise."""
        with self._lock:
            try:
                return self._models[name]
            except KeyError:
                loaded = ", ".join(self._models) or "none"
                raise ConfigError(
                    f"no model called {name!r} is loaded (loaded: {loaded}); load or train one first"
                ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._models)

    def remove(self, name: str) -> LoadedModel:
        """Forget the model called ``name`` and its cached saliency maps; returns what was removed."""
        with self._lock:
            entry = self.get(name)
            del self._models[name]
        self.saliency.evict(model=name)
        self._notify("removed", name)
        return entry

    def clear(self) -> None:
        """Forget every model and every cached map (the viewer is closing)."""
        for name in self.names():
            self.remove(name)
        self.saliency.clear()

    # -- listeners ---------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, name)`` on every change; returns a function that unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, event: str, name: str) -> None:
        for listener in list(self._listeners):
            listener(event, name)


# ------------------------------------------------------------------------------------ one per viewer
_WORKSPACES: weakref.WeakKeyDictionary[Any, Workspace] = weakref.WeakKeyDictionary()


def workspace_for(owner: Any) -> Workspace:
    """The workspace shared by everything that works for ``owner`` (a napari viewer); made on first use.

    ``owner`` is held weakly: when it is garbage, its workspace is too.
    """
    workspace = _WORKSPACES.get(owner)
    if workspace is None:
        workspace = _WORKSPACES[owner] = Workspace()
    return workspace


def forget_owner(owner: Any) -> None:
    """Drop ``owner``'s workspace now (its models and cached maps), e.g. when the viewer closes."""
    workspace = _WORKSPACES.pop(owner, None)
    if workspace is not None:
        workspace.clear()
