"""Sharing trained models as bioimage.io (Model Zoo, spec 0.5) packages, and loading such packages back.

A package is a zip that ilastik, deepImageJ, the BioImage.IO tools and other napari plugins read. What
ours holds and how it maps onto this package's own concepts:

- :mod:`.preprocessing`: our :class:`~napari_channelbias.windowing.Normalizer` as the package's own
  ``scale_linear`` / ``clip`` steps with fixed values (and back), sigmoid or softmax afterwards;
- :mod:`.weights_files`: the ``pytorch_state_dict`` (rebuilt by a consumer from
  segmentation-models-pytorch alone) and the ``torchscript`` and ``onnx`` files derived from it;
- :mod:`.audit`: the attribution audit (SWd, FWd, channel shares of full-output saliency);
- :mod:`.documentation`: the package's README (2D+ convention, init, training, audit);
- :mod:`.description`: the rdf.yaml content as bioimageio.spec's own model classes (validated);
- :mod:`.export`: the atomic export as an event generator;
- :mod:`.reader`: loading a package back as a card and a state dict, refusing ones that do not fit;
- :mod:`.zoo_test`: bioimageio.core's own model test, per weight format.

bioimageio.spec / bioimageio.core are an optional dependency (the ``bioimageio`` extra); every module
imports them inside functions so the rest of the package works without them.
"""
