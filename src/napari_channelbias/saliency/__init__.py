"""Per-channel saliency of a 2D+ segmentation model: which input slice (channel) drives the output.

Every method maps one normalised float32 window ``(K, H, W)`` to ``K`` non-negative float32 maps
``(K, H, W)``, map ``c`` for input channel ``c`` (slice ``z - r + c``). The definitions are those of the
design notes (section 2), one module per method family:

=======================  ==========================================================  ===================
method                   S_c                                                          module
=======================  ==========================================================  ===================
``full-output``          ``|d sum p_t / d x_c|``                                     ``full_output``
``foreground``           ``|d sum M p_t / d x_c|``, ``M = [p_t > 0.5]`` fixed        ``full_output``
``full-output-points``   ``mean_n |d p_t(h_n, w_n) / d x_c|``, N uniform pixels      ``points``
``foreground-points``    the same with the pixels drawn from ``M``                   ``points``
``occlusion``            ``|sum p_t(clean) - sum p_t(patch of c -> mean)|``          ``occlusion``
``gradcam``              ``|CAM(x) - CAM(x, channel c -> mean)|``                    ``gradcam``
``gradcam++``            the same with Grad-CAM++ weights                            ``gradcam``
=======================  ==========================================================  ===================

``p_t`` is the target-class probability (sigmoid of a single logit, softmax over several; target 0 for a
binary model, 1 for a multi-class one unless given). The model runs in eval mode with its parameters not
requiring grad; both states are restored afterwards. Sums run over the original pixels of the slice:
inputs are padded to a multiple of 32 for the encoder and the padded output is cropped before summing.

Tiling (``tile=...``) bounds memory on large slices; how each method's sums are split over tiles (exact
for pointwise models, approximate near tile borders for others, per-tile CAMs for Grad-CAM) is described
in :mod:`.base` and in each method's module.

The names live in :mod:`.registry` (no torch import: the command line's help and choices read it);
:func:`.compute.compute_saliency` runs one slice, :func:`.volume.saliency_events` a range of slices.
"""

