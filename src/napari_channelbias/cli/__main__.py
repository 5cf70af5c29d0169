"""``python -m napari_channelbias.cli``: the same as the ``channelbias`` command."""

import sys

from .main import main

sys.exit(main())
