"""bioimageio.core's own model test of a package, one result per weight format.

``bioimageio.core.test_model`` is what the Model Zoo's CI runs on a submitted model: it validates the
rdf.yaml with file checks (hashes), then for each weight format rebuilds the model as any consumer would,
runs the test input through the package's preprocessing, the weights and the postprocessing, compares
the result with the test output (the spec's default tolerances) and runs inference at the parameterised
sizes ``32 + 32 n`` (n = 0, 1, 2) and batch sizes 1 and 2. A local package needs no network for any of
that; the test suite runs it with sockets blocked to prove it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._deps import require
from .export import WEIGHT_FORMATS


@dataclass(frozen=True)
class FormatResult:
    """The outcome for one weight format: ``passed`` / ``failed`` and the first error, if any."""

    weight_format: str
    status: str
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _first_error(summary: object) -> str:
    for detail in getattr(summary, "details", []):
        for error in getattr(detail, "errors", []):
            return f"{detail.name}: {error.msg}"[:300]
    return ""


def zoo_test(
    package: str | os.PathLike[str], weight_formats: tuple[str, ...] = WEIGHT_FORMATS, device: str = "cpu",
) -> list[FormatResult]:
    """Run ``bioimageio.core.test_model`` on ``package`` for each weight format (CPU by default)."""
    core = require("bioimageio.core")
    results = []
    for weight_format in weight_formats:
        summary = core.test_model(Path(package), weight_format=weight_format, devices=[device])
        results.append(FormatResult(weight_format, str(summary.status), _first_error(summary)))
    return results


def format_results(results: list[FormatResult]) -> str:
    """One line per format, e.g. ``pytorch_state_dict: passed``."""
    return "\n".join(
        f"{r.weight_format}: {r.status}" + (f" ({r.error})" if r.error else "") for r in results
    )
