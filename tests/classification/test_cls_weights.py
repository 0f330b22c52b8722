"""Weights: timm's hrnet_w18 copied into ours predicts the same top-5; class-count mismatches."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import hrnet
from hrnet.classification import Classifier
from hrnet.classification.config import ClsConfig, ClsModelConfig
from hrnet.classification.model import build_model
from hrnet.models.weights import HeadMismatchError

from .conftest import TINY


@pytest.fixture(scope="module")
def timm_w18(sample):
    """timm's hrnet_w18, seeded random weights, BN statistics set from the sample (so logits stay finite).

    Randomly initialised BN layers (mean 0, var 1) let activations grow to ~1e8 through the network and
    the softmax becomes one-hot; one pass in train mode over the sample images at 128 px gives every BN
    layer real statistics, so the probabilities are spread out and the top-5 comparison means something.
    """
    timm = pytest.importorskip("timm")
    from timm.data import create_transform

    torch.manual_seed(0)
    model = timm.create_model("hrnet_w18", pretrained=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch gives exactly its statistics
            m.reset_running_stats()
    small = create_transform(input_size=128, interpolation="bilinear", crop_pct=0.875)
    files = sorted((sample / "images").iterdir())
    with torch.no_grad():
        model.train()(torch.stack([small(Image.open(f).convert("RGB")) for f in files]))
    return model.eval()


def test_timm_weights_load_strictly_and_predict_the_same_top5(timm_w18, sample, tmp_path):
    from timm.data import create_transform

    ours = hrnet.create_model("hrnet_w18", num_classes=1000)
    result = hrnet.load_weights(ours, timm_w18.state_dict())  # strict
    assert result.missing == [] and result.unexpected == []
    clf = Classifier(ours, device="cpu")

    files = sorted((sample / "images").iterdir())
    # timm's own model on timm's own preprocessing (crop_pct 0.875 = resize 256, centre crop 224)
    pre = create_transform(input_size=224, interpolation="bilinear", crop_pct=0.875)
    with torch.no_grad():
        theirs = timm_w18(torch.stack([pre(Image.open(f).convert("RGB")) for f in files]))
    assert 1.0 < theirs.abs().max() < 1e3  # a meaningful, finite spread of logits

    predictions = [r.top for r in clf.predict(files, topk=5)]
    probs = theirs.softmax(dim=1)
    top = probs.topk(5, dim=1)
    top6 = probs.topk(6, dim=1).values
    separated = 0
    for i, scores in enumerate(predictions):
        idx = torch.tensor([s.index for s in scores])
        # where timm's top-6 probabilities are clearly apart, the ranked classes must be identical
        if (top6[i, :-1] - top6[i, 1:]).min() > 1e-6:
            separated += 1
            assert idx.tolist() == top.indices[i].tolist(), files[i].name
        # tie-safe: our classes carry timm's top-5 probabilities, in order; our probabilities match them
        torch.testing.assert_close(probs[i, idx], top.values[i], atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(torch.tensor([s.prob for s in scores]), top.values[i], atol=1e-6, rtol=1e-4)
        assert [s.name for s in scores] == [clf.class_names[j] for j in idx.tolist()]
    assert separated >= 15  # most images have no near-tie: the comparison is not vacuous


def _tiny(num_classes: int) -> torch.nn.Module:
    return hrnet.create_model("hrnet_w18_small_v1", num_classes=num_classes, **TINY)


def test_checkpoint_with_another_class_count(tmp_path, sample):
    torch.manual_seed(0)
    source = _tiny(21)
    path = hrnet.save_weights(source, tmp_path / "w21.safetensors")

    # a model of 1000 classes: clear error naming both counts and the file, never a new classifier
    with pytest.raises(
        HeadMismatchError,
        match=r"w21.safetensors: the weights predict 21 classes but the model "
        r"has 1000",
    ):
        hrnet.load_weights(_tiny(1000), path)
    with pytest.raises(ValueError, match="21 classes but the model has 1000"):
        Classifier(_tiny(1000), weights=path, device="cpu")
    # an explicit num_classes at inference that differs from the file: an error too
    with pytest.raises(ValueError, match="21 classes but the model has 5"):
        Classifier("hrnet_w18_small_v1", weights=path, num_classes=5, device="cpu", **TINY)

    # fine-tuning from it (model.pretrained): classifier re-initialised, everything else loaded
    tuned = build_model(
        ClsConfig(model=ClsModelConfig(name="hrnet_w18_small_v1", num_classes=5, pretrained=str(path), **TINY))
    )
    assert tuned.classifier.weight.shape == (5, 2048)
    for key, value in source.state_dict().items():
        if not key.startswith("classifier."):
            torch.testing.assert_close(tuned.state_dict()[key], value)
    # without num_classes the class count comes from the file and the predictions are the source's
    clf = Classifier("hrnet_w18_small_v1", weights=path, device="cpu", **TINY)
    assert clf.num_classes == 21 and clf.class_names[3] == "3"
    image = sample / "images" / "n02123045_tabby.JPEG"
    with torch.no_grad():
        expected = source.eval()(clf.preprocess(image)[None])
    torch.testing.assert_close(clf.logits([image]), expected)


def test_classifier_accepts_paths_arrays_and_pil_images(sample):
    import numpy as np

    torch.manual_seed(2)
    clf = Classifier(_tiny(1000), device="cpu")
    path = sample / "images" / "n02504458_African_elephant.JPEG"
    pil = Image.open(path)
    by_path, by_array, by_pil = (r.top for r in clf.predict([path, np.asarray(pil.convert("RGB")), pil], topk=3))
    assert by_path == by_array == by_pil and len(by_path) == 3
    single = clf(str(path), topk=1)
    assert single.top == by_path[:1] and single.path == str(path)
    assert clf(pil, topk=3).top == by_path
    torch.testing.assert_close(clf.logits(clf.preprocess(path)[None]), clf.logits([path]))
    with pytest.raises(ValueError, match="not a classifier"):
        Classifier(torch.nn.Linear(2, 2), device="cpu")
