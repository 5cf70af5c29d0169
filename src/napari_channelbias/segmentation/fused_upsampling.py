"""A U-Net decoder block's nearest 2x upsampling and first 3x3 convolution as one transposed convolution.

Every block of smp's U-Net decoder doubles its input by nearest-neighbour upsampling (each value copied
into a 2 x 2 block), concatenates the skip connection and convolves with a 3 x 3 kernel ``w`` (padding 1).
On the upsampled channels the convolution reads every input value four times over. Output row
``Y = 2i + a`` reads upsampled rows ``Y - 1, Y, Y + 1``, which are input rows::

    a = 0:  i - 1, i, i      ->  input row i - 1 meets w[0], input row i meets w[1] + w[2]
    a = 1:  i, i, i + 1      ->  input row i meets w[0] + w[1], input row i + 1 meets w[2]

That is a transposed convolution with stride 2 and padding 1 whose 4-tap kernel is
``[w[2], w[1] + w[2], w[0] + w[1], w[0]]`` in each dimension (:func:`upsampling_kernel`). It does 16
multiply-adds per input pixel instead of 36 (4 output pixels times 9), never builds the upsampled tensor
(4 times the input's memory) and needs no concatenation: the skip channels keep their own 3 x 3
convolution, added to the result. Backward, the transposed convolution's input gradient is a plain
stride-2 convolution, so saliency gains as much as the forward pass.

Exact in real arithmetic: only the order of the float32 additions changes (the kernel sums ``w[1] +
w[2]`` are rounded once), as with ``channels_last``. :func:`use_fused_upsampling` switches a model's
decoder blocks over (and back) in place; their parameters, buffers and ``state_dict`` stay the same.
A block that does not have exactly this shape (attention after the concatenation, another interpolation,
a target size that is not twice the input), or whose first convolution carries a module hook (the fused
path never calls it), runs smp's own forward, so the switch is always safe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base.modules import Attention
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock
from torch import nn


def upsampling_kernel(
    weight: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """The ``(in, out, 4, 4)`` transposed-convolution kernel of nearest 2x upsampling then ``weight``.

    Parameters
    ----------
    weight
        A 3 x 3 convolution weight ``(out, in, 3, 3)``. Differentiable: training updates ``weight``.
    memory_format
        The layout of the result (that of the convolution's own weight, for oneDNN's fastest kernel).

    Returns
    -------
    torch.Tensor
        ``k[:, :, p, q] = sum of weight[:, :, r, s]`` over the rows ``r`` of tap ``p`` and the columns
        ``s`` of tap ``q`` (taps ``0..3`` take ``{2}, {1, 2}, {0, 1}, {0}``), transposed to
        ``(in, out, ...)`` as ``conv_transpose2d`` wants.
    """
    rows = torch.stack(
        [weight[:, :, 2], weight[:, :, 1] + weight[:, :, 2], weight[:, :, 0] + weight[:, :, 1], weight[:, :, 0]],
        dim=2,
    )
    taps = torch.stack(
        [rows[..., 2], rows[..., 1] + rows[..., 2], rows[..., 0] + rows[..., 1], rows[..., 0]], dim=3
    )
    return taps.transpose(0, 1).contiguous(memory_format=memory_format)


def _plain_3x3(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def _identity(attention: nn.Module) -> bool:
    """smp's ``Attention(None)`` (or a bare identity): nothing between the concatenation and the conv."""
    if isinstance(attention, Attention):
        attention = attention.attention
    return isinstance(attention, nn.Identity)


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` itself carries a forward or backward hook (its submodules are not looked at)."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


class FusedUnetDecoderBlock(UnetDecoderBlock):
    """smp's ``UnetDecoderBlock`` computing upsampling + first convolution as one transposed convolution.

    Only :func:`use_fused_upsampling` makes these (by switching the class of an existing block), so
    ``__init__`` is smp's. The result equals smp's forward to float32 rounding (module notes).
    """

    def forward(
        self,
        feature_map: torch.Tensor,
        target_height: int,
        target_width: int,
        skip_connection: torch.Tensor | None = None,
    ) -> torch.Tensor:
        conv = self.conv1[0]
        doubled = feature_map.ndim == 4 and (target_height, target_width) == (
            2 * feature_map.shape[2], 2 * feature_map.shape[3])
        # The fused path never calls conv1 (a Sequential), its convolution or attention1 as modules, so a
        # hook on one of them (Grad-CAM may target the convolution) takes smp's forward. The norm and the
        # activation after the convolution are called as modules: their hooks fire either way (ProtoSeg
        # reads conv1's output at its activation).
        if not (doubled and self.interpolation_mode == "nearest" and _plain_3x3(conv)
                and (skip_connection is None or _identity(self.attention1))
                and not any(_hooked(m) for m in (self.conv1, conv, *self.attention1.modules()))):
            return super().forward(feature_map, target_height, target_width, skip_connection)
        kernel, skip_weight = self._fused_weights(conv.weight, feature_map.shape[1])
        out = F.conv_transpose2d(feature_map, kernel, conv.bias, stride=2, padding=1)
        if skip_connection is not None:
            out = out + F.conv2d(skip_connection, skip_weight, None, 1, 1)
        for layer in list(self.conv1)[1:]:  # the norm and activation after the convolution
            out = layer(out)
        out = self.conv2(out)
        return self.attention2(out)

    def _fused_weights(self, weight: torch.Tensor, upsampled: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The transposed kernel of the upsampled channels and the skip channels' own 3 x 3 weight.

        Built from ``weight`` on every call while autograd needs its gradient (training); otherwise kept
        until ``weight`` changes (its storage or version: an optimiser step, ``load_state_dict``, a move),
        since building it costs about 4 % of a Lite0 forward pass.
        """
        layout = (torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last)
                  else torch.contiguous_format)
        if (weight.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
            return upsampling_kernel(weight[:, :upsampled], layout), weight[:, upsampled:]
        # The cache holds a view of the weight's storage, so the address in the key cannot be reused
        # by another tensor while the entry lives; the version counter is shared with the weight.
        key = (weight.data_ptr(), weight._version, upsampled, layout, weight.dtype, weight.device)
        cached = getattr(self, "_fused_cache", None)
        if cached is None or cached[0] != key:
            # Outside inference mode, so that a kernel built during prediction can be saved for
            # backward by a later saliency pass.
            with torch.inference_mode(False), torch.no_grad():
                kernel = upsampling_kernel(weight[:, :upsampled], layout)
                skip_weight = weight[:, upsampled:].contiguous(memory_format=layout)
            cached = (key, kernel, skip_weight, weight.detach())
            self._fused_cache = cached
        return cached[1], cached[2]


def use_fused_upsampling(model: nn.Module, enabled: bool) -> int:
    """Switch every U-Net decoder block of ``model`` to the fused forward (or back to smp's), in place.

    Parameters
    ----------
    model
        Any module; only its ``UnetDecoderBlock`` submodules are touched (none: nothing happens).
    enabled
        True: :class:`FusedUnetDecoderBlock`; False: smp's ``UnetDecoderBlock`` again.

    Returns
    -------
    int
        How many blocks now run the requested forward.
    """
    target = FusedUnetDecoderBlock if enabled else UnetDecoderBlock
    switched = 0
    for module in model.modules():
        if type(module) in (UnetDecoderBlock, FusedUnetDecoderBlock):
            module.__class__ = target
            switched += 1
    return switched
