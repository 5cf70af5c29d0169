"""``--store`` and ``--scheduler`` on predict, saliency, asymmetry and evaluate, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_channelbias.cli.main import main
from napari_channelbias.distributed.cluster import parse_scheduler
from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store import ResultsStore, labels_key, open_table, saliency_key


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer

    d = tmp_path_factory.mktemp("scale")
    image = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    tifffile.imwrite(d / "image.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"spacing": 3.0})
    tifffile.imwrite(d / "labels.tif", (image > 127).astype(np.uint8))
    model, prov = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    save_checkpoint(d / "tiny.pt", model, ModelCard(model=prov["spec"], normalization=Normalizer.fit(image).to_dict()))
    return d


def _base(d, command):
    return [command, "--checkpoint", str(d / "tiny.pt"), "--image", str(d / "image.tif"), "--device", "cpu"]


def test_predict_into_a_store_resumes_and_keeps_the_voxel_size(job, tmp_path, capsys):
    store = tmp_path / "r.ome.zarr"
    args = [*_base(job, "predict"), "--store", str(store), "--tile", "64", "--overlap", "16", "--quiet"]
    assert main([*args, "--slices", "0:2"]) == 0
    assert ResultsStore.open(store).get(labels_key("tiny")).done_mask().tolist() == [1, 1, 0, 0, 0]
    assert main(args) == 0
    opened = ResultsStore.open(store)
    assert opened.get(labels_key("tiny")).done_mask().all()
    assert opened.scale == (3.0, 0.5, 0.5)  # ImageJ spacing and resolution carried over
    assert f"wrote {store}" in capsys.readouterr().out


def test_saliency_and_asymmetry_into_a_store(job, tmp_path, capsys):
    store = tmp_path / "r.ome.zarr"
    assert main([*_base(job, "saliency"), "--method", "full-output", "--store", str(store), "--name", "m",
                 "--quiet"]) == 0
    assert ResultsStore.open(store).get(saliency_key("m", "full-output")).done_mask().all()
    capsys.readouterr()
    assert main([*_base(job, "asymmetry"), "--method", "full-output", "--store", str(store), "--name", "m",
                 "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    table = open_table(ResultsStore.open(store), "tables/m/asymmetry-full-output")
    assert [r["z"] for r in table.rows()] == [0, 1, 2, 3, 4]
    assert table.summary["pooled"]["swd"] == pytest.approx(printed["pooled"]["swd"])


def test_bad_scale_options_are_one_line_errors(job, tmp_path, capsys):
    assert main([*_base(job, "predict"), "--scheduler", "local:2"]) == 2
    assert "give --store" in capsys.readouterr().err
    assert main([*_base(job, "predict")]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(ChannelBiasError, match="local:N"):
        parse_scheduler("local")
    with pytest.raises(ChannelBiasError, match="N >= 1"):
        parse_scheduler("local:0")
    assert parse_scheduler("tcp://h:8786") == ("address", "tcp://h:8786")


def test_evaluate_on_a_local_cluster_prints_the_single_process_table(job, capsys):
    pytest.importorskip("distributed")
    args = [*_base(job, "evaluate"), "--labels", str(job / "labels.tif"), "--json", "--quiet"]
    assert main(args) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main([*args, "--scheduler", "local:2", "--block-size", "2"]) == 0
    dist = json.loads(capsys.readouterr().out)
    for name, stats in serial["summary"].items():
        assert dist["summary"][name]["mean"] == pytest.approx(stats["mean"], rel=1e-6), name
