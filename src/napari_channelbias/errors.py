"""User-facing error types.

Every failure a user can cause (a bad file, a wrong option, missing weights) raises a
:class:`ChannelBiasError` whose message names what was found and what to do. The command line prints
it as one line and exits with status 2; the napari widgets show it as a notification. Anything else
that escapes is a bug in this package.
"""

from __future__ import annotations


class ChannelBiasError(Exception):
    """A problem the user can fix; the message says how."""


class VolumeError(ChannelBiasError):
    """An image or label volume that cannot be used as given."""


class CheckpointError(ChannelBiasError):
    """A checkpoint file that is missing, corrupt or does not match what is asked of it."""


class WeightsUnavailableError(ChannelBiasError):
    """Pretrained weights were asked for but no offline source has them."""


class ConfigError(ChannelBiasError):
    """An unknown name or an out-of-range value in a model, training or analysis setting."""
