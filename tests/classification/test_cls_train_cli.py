"""End to end on the 21 real sample images: train a small HRNet-C on the CPU, then eval / predict.

The small network is hrnet_w18_small_v1's topology at width 8 with one residual unit per branch and
the full HRNet-C head; 64 px crops. BN momentum 0.5 lets the running statistics catch up with weights
that change fast in a 30-step run (with 0.1 the eval-mode accuracy lags far behind the train-mode one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrnet.classification import Classifier, ClsConfig, train
from hrnet.classification.classes import read_classes
from hrnet.cli import main
from hrnet.engine.config import load_config

from .conftest import TINY

MODEL_ARGS = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY.items()]


def _overrides(folder: Path) -> list[str]:
    return [
        "model.name=hrnet_w18_small_v1",
        "model.num_classes=21",
        "model.bn_momentum=0.5",
        *MODEL_ARGS,
        f"data.train={folder}",
        f"data.val={folder}",
        "data.crop_size=64",
        "data.resize_size=73",
        "data.crop_scale=[0.6,1.0]",
        "test.workers=0",
        "test.batch_size=21",
    ]


@pytest.fixture(scope="module")
def trained(sample_folder, tmp_path_factory):
    """One CPU training run (30 steps, SGD Nesterov; lr 0.1 for 42 images -> 0.05 for the batch of 21)."""
    out = tmp_path_factory.mktemp("cls_run")
    cfg = load_config(
        ClsConfig,
        None,
        _overrides(sample_folder)
        + [
            "train.epochs=30",
            "train.batch_size=21",
            "train.workers=0",
            "train.eval_every=30",
            "train.log_every=1",
            "train.optim.lr=0.1",
            "train.optim.nesterov=true",
            "train.optim.weight_decay=0",
            "train.schedule.milestones=[22]",
            "lr_reference_batch=42",
        ],
    )
    metrics = train(cfg, out, device="cpu")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return out, metrics, records


def test_small_hrnet_c_fits_the_sample_and_the_loss_falls(trained):
    out, metrics, records = trained
    losses = [r["loss"] for r in records if r["type"] == "epoch"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:3]) / 3  # from ~ln(21) = 3.0 to well below 1
    assert metrics["top1"] >= 0.9 and metrics["top5"] >= metrics["top1"] and metrics["count"] == 21
    # linear scaling: 0.1 x (21 images x 1 process x 1 step) / 42 = 0.05, then x0.1 at epoch 22
    lrs = [r["lr"] for r in records if r["type"] == "train"]
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.005)
    for name in ("model_best.safetensors", "last.pt", "best.pt", "config.yaml", "classes.txt"):
        assert (out / name).is_file(), name


def test_trained_weights_predict_with_readable_names(trained, sample_folder, labels, sample):
    out, metrics, _ = trained
    classes = read_classes(out / "classes.txt")
    assert classes == sorted((e["wnid"], e["class_name"]) for e in labels)  # wnid folders -> ImageNet names
    # the weights file alone: its model card rebuilds the overridden network, classes and crop sizes
    clf = Classifier(out / "model_best.safetensors", device="cpu")
    assert clf.num_classes == 21 and clf.class_names == [n for _, n in classes]
    assert (clf.crop_size, clf.resize_size) == (64, 73) and clf.class_ids == [i for i, _ in classes]
    again = clf.evaluate(sample_folder, batch_size=21)
    assert again["top1"] == pytest.approx(metrics["top1"]) and again["top5"] == pytest.approx(metrics["top5"])
    predictions = [r.top for r in clf.predict([sample / e["file_name"] for e in labels])]
    right = sum(p[0].name == e["class_name"] for p, e in zip(predictions, labels))
    assert right == round(metrics["top1"] * 21)
    for p in predictions:
        assert len(p) == 5 and all(a.prob >= b.prob for a, b in zip(p, p[1:])) and sum(s.prob for s in p) <= 1 + 1e-6


def test_cli_eval_json_and_predict(trained, sample_folder, sample, labels, tmp_path, capsys):
    out, metrics, _ = trained
    weights = str(out / "model_best.safetensors")
    sets = ["--set", *_overrides(sample_folder)]
    report = tmp_path / "eval.json"
    assert main(["cls", "eval", "--weights", weights, "--json", str(report), "--device", "cpu", *sets]) == 0
    scores = json.loads(report.read_text())
    assert 0.0 <= scores["top5"] <= 1.0 and scores["top1"] == pytest.approx(metrics["top1"])
    assert scores["top5"] == pytest.approx(metrics["top5"]) and scores["count"] == 21
    assert "top-1" in capsys.readouterr().out

    tench = sample / "images" / "n01440764_tench.JPEG"
    mug = sample / "images" / "n03063599_coffee_mug.JPEG"
    # the carded weights alone are enough: no --set, no --model
    assert (
        main(
            [
                "cls",
                "predict",
                str(tench),
                str(mug),
                "--weights",
                weights,
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "pred"),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in report["results"]] == [tench.name, mug.name] and report["done"] == 2
    names = {e["class_name"] for e in labels}
    for r in report["results"]:
        assert len(r["top"]) == 5 and all(0.0 <= t["prob"] <= 1.0 and t["name"] in names for t in r["top"])
        assert (tmp_path / "pred" / "run-001" / r["output"][0]).is_file()
    clf = Classifier(weights, device="cpu")
    expected = clf(tench).top
    assert [(t["index"], t["name"]) for t in report["results"][0]["top"]] == [(s.index, s.name) for s in expected]


def test_cli_class_count_mismatch(trained, sample_folder, capsys):
    out, _, _ = trained
    weights = str(out / "model_best.safetensors")
    sets = ["--set", *_overrides(sample_folder), "model.num_classes=1000"]
    # the config says 1000 classes, the checkpoint has 21: a clear error, exit status 2
    assert main(["cls", "eval", "--weights", weights, "--device", "cpu", *sets]) == 2
    err = capsys.readouterr().err
    assert "num_classes=1000 but the weights classify 21 classes" in err and "model_best.safetensors" in err
    # --num-classes that differs from the weights at inference: an error, never a re-initialised classifier
    image = str(sample_folder / "n01440764" / "n01440764_tench.JPEG")
    assert (
        main(
            [
                "cls",
                "predict",
                image,
                "--weights",
                weights,
                "--num-classes",
                "7",
                "--classes",
                str(_seven(out)),
                "--device",
                "cpu",
                "--out",
                str(out.parent / "p7"),
            ]
        )
        == 2
    )
    assert "num_classes=7 but the weights classify 21 classes" in capsys.readouterr().err


def _seven(out: Path) -> Path:
    path = out.parent / "seven.txt"
    path.write_text("".join(f"c{i}\n" for i in range(7)))
    return path


def test_cli_bad_data_folder(sample_folder, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(sample_folder, root)
    args = [
        "cls",
        "eval",
        "--model",
        "hrnet_w18_small_v1",
        "--data",
        str(root),
        "--device",
        "cpu",
        "--set",
        *MODEL_ARGS,
    ]
    (root / "n01484850").mkdir()  # great white shark: an ImageNet class, but its folder is empty
    assert main(args) == 2 and "n01484850: class folder holds no images" in capsys.readouterr().err
    (root / "n01484850").rmdir()
    (root / "not_a_wnid").mkdir()  # a 1000-class model maps folders by ImageNet wnid
    assert main(args) == 2
    assert "class folders ['not_a_wnid'] are not among the model's 1000 classes" in capsys.readouterr().err
