"""The distributed engine: whole-volume prediction, saliency, asymmetry and evaluation on Dask.

The volume is split into blocks of consecutive slices (:mod:`.blocks`); every Dask worker loads the
checkpoint once (:mod:`.plugin`); each task runs the same per-slice core generators as the
single-process path on its block (:mod:`.tasks`), reading only its slices and their window's halo and
writing only its own chunks of the results store; the client merges the partial statistics exactly
(:mod:`.engine`). :mod:`.cluster` turns ``--scheduler ADDRESS`` or ``local:N`` into a client.
Needs the ``distributed`` extra (``pip install napari-channelbias[distributed]``).
"""
