"""The attribution audit: exact symmetry for a uniform first layer, its CSV, figure and Markdown table."""

from __future__ import annotations

import csv

import pytest

from napari_channelbias.events import SliceDone, run_to_end
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sharing.audit import (
    audit_events,
    channel_names,
    markdown_table,
    write_audit_csv,
    write_audit_figure,
)
from napari_channelbias.windowing import Normalizer


def test_channel_names_run_from_the_lowest_z():
    assert channel_names(1) == ["z"]
    assert channel_names(3) == ["z-1", "z", "z+1"]
    assert channel_names(5) == ["z-2", "z-1", "z", "z+1", "z+2"]


def _model_and_card(init: str, stack) -> tuple:
    model, provenance = build_model(ModelSpec(arch="unet", encoder="efficientnet-lite0", init=init))
    card = ModelCard(model=provenance["spec"], normalization=Normalizer.fit(stack).to_dict())
    return model.eval(), card


def test_a_uniform_first_layer_gets_exactly_equal_attribution(em_stack):
    # Every input channel has the same first-layer filter, so d output / d x_c is the same map for every c
    # (the gradient of conv(W, x_0 + x_1 + x_2)): SWd and FWd are exactly 0, the shares exactly equal.
    model, card = _model_and_card("uniform-green", em_stack[0])
    events = []
    audit = run_to_end(audit_events(model, card, em_stack[0][:, :64, :64], [2, 5]), events.append)
    assert [e.z for e in events if isinstance(e, SliceDone)] == [2, 5]
    summary = audit.summary()
    assert (summary["swd"], summary["fwd"], summary["swd_mean"]) == (0.0, 0.0, 0.0)
    assert summary["shares"]["z-1"] == summary["shares"]["z"] == summary["shares"]["z+1"]
    assert summary["slices"] == [2, 5] and summary["method"] == "full-output"


def test_an_rgb_first_layer_is_audited_as_asymmetric(em_stack, tmp_path):
    model, card = _model_and_card("random", em_stack[0])
    audit = run_to_end(audit_events(model, card, em_stack[0][:, :64, :64], [4]))
    assert audit.summary()["swd"] > 0
    assert audit.summary()["swd_se"] != audit.summary()["swd_se"]  # one slice: no standard error (nan)
    rows = list(csv.DictReader(write_audit_csv(audit, tmp_path / "a.csv").open()))
    assert [r["scope"] for r in rows] == ["slice", "pooled", "slice_mean", "slice_se"]
    assert float(rows[1]["swd"]) == pytest.approx(audit.result.pooled.swd)
    assert float(rows[1]["share_z-1"]) + float(rows[1]["share_z"]) + float(rows[1]["share_z+1"]) == pytest.approx(1)
    png = write_audit_figure(audit, tmp_path / "a.png", "title")
    assert png.read_bytes().startswith(b"\x89PNG")
    table = markdown_table(audit)
    assert "| SWd |" in table and "| share z+1 |" in table and "n/a (one slice)" in table
