"""Pretrained weights by name: the zoo table, and turning an entry into a verified, carded file in the cache.

An entry is named ``model.tag`` as timm names its weights (``pose_hrnet_w32.coco_256x192``,
``seg_hrnet_w48.cityscapes``, ``faster_rcnn_hrnet_w32.coco``, ``hrnet_w32.ms_in1k``); a bare model name
means its default tag. The facts of every entry (upstream URL, sha256, file layout, the card it becomes,
the metric it reports and the paper's value, source, licence) are data, in ``pretrained.yaml`` beside
this module, each checked against the upstream metafile or README it names.

:func:`resolve` fetches the upstream file once through :mod:`hrnet.models.download` (cache, mirror,
offline mode, sha256 checked before anything is unpickled), loads it strictly into the network its card
describes, and writes ``cache_dir()/pretrained/<name>.safetensors`` with that card: from then on the name
loads without unpickling anything and without the network. The card's ``train`` section keeps where the
weights came from (URL, the full sha256 measured at download, layout, source, licence) and what they
score, so every command can say which weights it used.

This module sits above the task packages, like the command line: task-specific card content comes from
each task's ``default_card`` (through :mod:`hrnet.registry`) plus the entry's ``presets`` and overrides.
Task packages may import it (it imports none of them, and not :mod:`hrnet.loader`, which imports it).

Every weights argument of the package (the facades' ``model`` / ``weights``, ``--weights`` / ``--detector`` of
every command, ``hrnet export NAME --weights``) goes through :func:`resolve_weights`, so one set of forms
works everywhere: a zoo name, a file (carded or not), an ``http(s)://`` URL (``#sha256=`` checked) or
``hf-hub:org/repo[/file]``. :func:`resolve_arguments` is the facades' use of it, with the task defaults of
the table (``PoseEstimator()``) and ``pretrained=True`` on a bare model name.

Besides the HRNet zoo (:data:`ENTRIES`) the table lists torchvision's person-capable COCO detectors
(:data:`PERSON_DETECTORS`, layout ``torchvision``): top-down pose runs one when it is given no boxes.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torchvision.models import detection

from hrnet.models.card import ModelCard, read_card
from hrnet.models.download import (
    ENV_OFFLINE,
    DownloadError,
    cache_dir,
    cached_path,
    download_record,
    fetch,
    offline,
    sha256_of,
)
from hrnet.models.sources import HF_PREFIX, WEIGHT_SUFFIXES, as_url, looks_like_weights, resolve_source
from hrnet.models.weights import load_weights, read_raw_state_dict, save_weights
from hrnet.models.zoo import ALIASES
from hrnet.registry import get as get_spec
from hrnet.registry import spec_of_model

log = logging.getLogger("hrnet")

TABLE_FILE = Path(__file__).with_name("pretrained.yaml")
KEYPOINT_SETS = Path(__file__).with_name("pose") / "keypoint_sets"  # data files, read without importing pose
CACHE_SUBDIR = "pretrained"
DOWNLOAD_SUBDIR = "downloads"

# The upstream file layouts the zoo converts from. Each is recognised by key names of the file (after its
# container is unwrapped): any one of the alternatives, every key of it present.
LAYOUT_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "official_pose": (("conv1.weight", "final_layer.weight"),),
    # HRNetV1 heads (one conv), then HRNetV2 heads (conv + BN + ReLU + conv: face and hand models)
    "mmpose0": (
        ("backbone.conv1.weight", "keypoint_head.final_layer.weight"),
        ("backbone.conv1.weight", "keypoint_head.final_layer.3.weight"),
    ),
    "mmpose1": (("backbone.conv1.weight", "head.final_layer.weight"),),
    # HRNet-Facial-Landmark-Detection: the V2 landmark head is ``head.{0,1,3}``
    "official_landmark": (("conv1.weight", "head.3.weight"),),
    "official_seg": (("model.conv1.weight", "model.last_layer.3.weight"), ("conv1.weight", "last_layer.3.weight")),
    "mmseg": (("backbone.conv1.weight", "decode_head.conv_seg.weight"),),
    "mmdet2": (
        ("backbone.conv1.weight", "rpn_head.rpn_conv.weight", "roi_head.bbox_head.fc_cls.weight"),
        ("backbone.conv1.weight", "rpn_head.rpn_conv.weight", "roi_head.bbox_head.0.fc_cls.weight"),
    ),
    "official_det": (
        ("backbone.conv1.weight", "rpn_head.rpn_conv.weight", "bbox_head.fc_cls.weight"),
        ("backbone.conv1.weight", "rpn_head.rpn_conv.weight", "bbox_head.0.fc_cls.weight"),
    ),
    "timm": (("conv1.weight", "incre_modules.0.0.conv1.weight", "classifier.weight"),),
    "official_cls": (("conv1.weight", "incre_modules.0.0.conv1.weight", "classifier.weight"),),
    # torchvision's detection models: a ResNet or a MobileNetV3 body under the FPN, torchvision's box predictor
    "torchvision": (
        ("backbone.body.conv1.weight", "roi_heads.box_predictor.cls_score.weight"),
        ("backbone.body.0.0.weight", "roi_heads.box_predictor.cls_score.weight"),
    ),
}
LAYOUTS = tuple(LAYOUT_KEYS)
# what an entry may set on top of its task's default card and its data set's preset
CARD_KEYS = ("overrides", "test", "meta", "mean", "std")


@dataclass(frozen=True)
class Metric:
    """A published score: ``name`` (AP, mIoU, top-1, ...) and ``value`` in percent on ``dataset`` under
    ``protocol``; ``also`` holds the other numbers published with it (AR, mask AP, multi-scale mIoU)."""

    name: str
    value: float
    dataset: str
    protocol: str = ""
    also: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> Metric:
        """Read a YAML mapping; a missing or non-numeric value is a ``ValueError`` naming ``origin``."""
        try:
            also = tuple((str(k), float(v)) for k, v in (data.get("also") or {}).items())
            return cls(
                str(data["name"]), float(data["value"]), str(data["dataset"]), str(data.get("protocol", "")), also
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{origin}: a metric needs name, value (a number) and dataset ({err})") from err

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (what the card and ``hrnet list --pretrained --json`` carry)."""
        return {
            "name": self.name,
            "value": self.value,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "also": dict(self.also),
        }

    def text(self) -> str:
        """``'AP 74.6'``, ``'box AP 41.2, mask AP 37.1'``: the score as the table prints it."""
        extra = [f"{k} {score_text(v)}" for k, v in self.also if k.endswith(" AP")]
        return ", ".join([f"{self.name} {score_text(self.value)}", *extra])


def score_text(value: float) -> str:
    """A published score as it was written: one decimal at least (``76.0``), two where given (``55.83``)."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(frozen=True)
class PretrainedEntry:
    """One published checkpoint: where it is, how to verify and convert it, what it becomes and scores.

    ``name`` is ``model.tag``; ``urls`` are places holding the same file (tried in order; ``hf-hub:``
    names go through the Hugging Face client); ``sha256`` is the published digest (full, or the 8-hex
    prefix of OpenMMLab file names), None where the upstream publishes none; ``layout`` the upstream key
    layout (one of :data:`LAYOUTS`); ``dataset`` the preset that gives the card its labels (keypoint set or
    classes); ``card`` what the entry sets on top of that (``test`` settings, builder ``overrides``,
    ``meta``, ``mean`` / ``std``); ``paper`` the same setting's value in the paper's tables, if any;
    ``checked`` says how the facts were verified (the upstream commit read, or what was not re-checked).
    """

    name: str
    layout: str
    urls: tuple[str, ...]
    sha256: str | None
    dataset: str
    input_size: tuple[int, int]
    metric: Metric
    source: str
    licence: str
    checked: str
    paper: Metric | None = None
    default: bool = False
    card: Mapping[str, Any] = field(default_factory=dict, compare=False)
    size_mb: float | None = None

    def __post_init__(self) -> None:
        model, dot, tag = self.name.partition(".")
        where = f"pretrained entry {self.name!r}"
        if not (model and dot and tag) or "." in tag:
            raise ValueError(f"{where}: a name is 'model.tag', e.g. 'pose_hrnet_w32.coco_256x192'")
        if self.layout not in LAYOUTS:
            raise ValueError(f"{where}: layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if not self.urls or not all(isinstance(u, str) and u for u in self.urls):
            raise ValueError(f"{where}: needs at least one URL")
        if self.sha256 is not None:
            digest = str(self.sha256).lower()
            if not 8 <= len(digest) <= 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{where}: sha256 must be 8 to 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)
        if len(self.input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.input_size):
            raise ValueError(f"{where}: input_size must be [H, W], got {self.input_size!r}")
        unknown = sorted(set(self.card) - set(CARD_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown card keys {unknown}; an entry may set {list(CARD_KEYS)}")
        if not self.licence or not self.source:
            raise ValueError(f"{where}: source and licence are required")

    @property
    def model(self) -> str:
        """The builder's model name (``pose_hrnet_w32``)."""
        return self.name.partition(".")[0]

    @property
    def tag(self) -> str:
        """What distinguishes the weights of one model (``coco_256x192``)."""
        return self.name.partition(".")[2]

    @property
    def task(self) -> str:
        """The registry's task name of the model (``pose``, ``seg``, ``det``, ``cls``); torchvision's
        detectors (not HRNet model names) are ``det``."""
        if self.layout == "torchvision":
            return "det"
        return spec_of_model(self.model).name


def _model_from_card(card: ModelCard) -> nn.Module:
    """The (unloaded) network of ``card``, built by its task through the registry (what
    :func:`hrnet.loader.model_from_card` does; that module imports this one, so it is not used here)."""
    return get_spec(card.task).model_from_card.load()(card)


def build_torchvision_detector(arch: str, num_classes: int) -> nn.Module:
    """torchvision detector ``arch`` (``keypointrcnn_resnet50_fpn``, ...) with ``num_classes`` outputs
    (background included) and no weights at all: nothing is downloaded. Built without weights, torchvision
    uses ``BatchNorm2d`` where its published files were made with frozen batch norm; in eval mode the two
    compute the same function, and only the ``num_batches_tracked`` counters are absent from those files."""

    builder = getattr(detection, arch, None)
    if not callable(builder) or not arch.islower():
        raise ValueError(f"{arch!r} is not a torchvision detection architecture")
    return builder(weights=None, weights_backbone=None, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------- the table


def _entry_from_yaml(raw: Mapping[str, Any]) -> PretrainedEntry:
    where = f"{TABLE_FILE.name}: entry {raw.get('name')!r}"
    known = {
        "name",
        "default",
        "layout",
        "url",
        "urls",
        "sha256",
        "dataset",
        "input_size",
        "metric",
        "paper",
        "source",
        "licence",
        "checked",
        "size_mb",
        *CARD_KEYS,
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    urls = raw.get("urls") or [raw.get("url")]
    try:
        return PretrainedEntry(
            name=str(raw["name"]),
            layout=str(raw["layout"]),
            urls=tuple(str(u) for u in urls if u),
            sha256=None if raw.get("sha256") is None else str(raw["sha256"]),
            dataset=str(raw["dataset"]),
            input_size=tuple(int(v) for v in raw["input_size"]),  # type: ignore[arg-type]
            metric=Metric.from_dict(raw["metric"], where),
            paper=Metric.from_dict(raw["paper"], where) if raw.get("paper") else None,
            source=str(raw["source"]),
            licence=str(raw["licence"]),
            checked=str(raw.get("checked", "")),
            default=bool(raw.get("default", False)),
            card={k: _plain(raw[k]) for k in CARD_KEYS if k in raw},
            size_mb=float(raw["size_mb"]) if raw.get("size_mb") is not None else None,
        )
    except KeyError as err:
        raise ValueError(f"{where}: missing {err}") from err


def _plain(value: Any) -> Any:
    """A deep copy as plain JSON data (YAML anchors share objects between entries)."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class _Table:
    presets: dict[str, dict[str, Any]]
    entries: tuple[PretrainedEntry, ...]  # the HRNet zoo
    detectors: tuple[PretrainedEntry, ...]  # torchvision's person detectors
    defaults: dict[str, str]  # task (or "person_detector") -> entry name

    @property
    def every(self) -> tuple[PretrainedEntry, ...]:
        return self.entries + self.detectors


@functools.cache
def _load_table() -> _Table:
    data = yaml.load(TABLE_FILE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    presets = {task: {k: _plain(v or {}) for k, v in sets.items()} for task, sets in data["presets"].items()}
    table = _Table(
        presets,
        tuple(_entry_from_yaml(raw) for raw in data["entries"]),
        tuple(_entry_from_yaml(raw) for raw in data.get("person_detectors") or ()),
        {str(k): str(v) for k, v in (data.get("defaults") or {}).items()},
    )
    names = [e.name for e in table.every]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{TABLE_FILE.name}: entries named twice: {dup}")
    odd = [e.name for e in table.entries if e.layout == "torchvision"]
    odd += [e.name for e in table.detectors if e.layout != "torchvision"]
    if odd:
        raise ValueError(f"{TABLE_FILE.name}: torchvision detectors belong under person_detectors, only they: {odd}")
    for task, name in table.defaults.items():
        if name not in names:
            raise ValueError(f"{TABLE_FILE.name}: the default of {task!r} is {name!r}, which is no entry")
    return table


def _table() -> tuple[dict[str, dict[str, Any]], tuple[PretrainedEntry, ...]]:
    """The presets and the HRNet zoo (what the tests and the listing read)."""
    table = _load_table()
    return table.presets, table.entries


def presets() -> dict[str, dict[str, dict[str, Any]]]:
    """The card presets of each task's data sets (``{"pose": {"crowdpose": {...}}, "seg": ...}``)."""
    return _plain(_table()[0])


def __getattr__(name: str) -> Any:
    # ENTRIES is read from the YAML file on first use, so importing this module (the CLI does) stays cheap
    if name == "ENTRIES":
        return _table()[1]
    if name == "PERSON_DETECTORS":
        return _load_table().detectors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def list_entries(task: str | None = None, *, person_detectors: bool = False) -> list[PretrainedEntry]:
    """Every entry of the HRNet zoo (of ``task`` when given), in table order; with ``person_detectors`` the
    torchvision person detectors too (task ``det``)."""
    if task is not None:
        get_spec(task)  # an unknown task is one line listing the known ones
    table = _load_table()
    pool = table.every if person_detectors else table.entries
    return [e for e in pool if task is None or e.task == task]


def default_tag(model_name: str) -> str | None:
    """The tag a bare model name means (``pose_hrnet_w32`` -> ``coco_256x192``), or None when the table has
    no weights for that model."""
    model = _canonical(model_name)
    return next((e.tag for e in _load_table().every if e.model == model and e.default), None)


def task_default(task: str) -> PretrainedEntry:
    """The entry used when a command or facade of ``task`` gets no weights at all (``hrnet pose predict
    photo.jpg``, ``Segmenter()``); ``task`` may also be ``"person_detector"``: the detector top-down pose
    runs without boxes."""
    table = _load_table()
    if task not in table.defaults:
        raise ValueError(f"no default pretrained weights for {task!r}; defaults exist for {sorted(table.defaults)}")
    return entry(table.defaults[task])


def _canonical(model_name: str) -> str:
    """``hrnet_w18_small`` -> ``hrnet_w18_small_v1`` (the zoo's aliases, with any task prefix)."""
    for prefix in ("pose_", "seg_", ""):
        if model_name.startswith(prefix) and model_name[len(prefix) :] in ALIASES:
            return prefix + ALIASES[model_name[len(prefix) :]]
    return model_name


def entry(name: str) -> PretrainedEntry:
    """The entry called ``name`` (``model.tag``), or a bare model name's default entry; an unknown name is a
    ``ValueError`` that suggests close names."""
    model, _, tag = name.partition(".")
    model = _canonical(model)
    if not tag:
        tag = default_tag(model) or ""
    full = f"{model}.{tag}"
    every = _load_table().every
    for item in every:
        if item.name == full:
            return item
    names = [e.name for e in every]
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    if not tag:
        own = sorted({e.model for e in every})
        raise ValueError(f"no pretrained weights for {name!r}; models with weights: {', '.join(own)}")
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown pretrained weights {name!r}{hint} (see `hrnet list --pretrained`)")


# ------------------------------------------------------------------------------------------------ the card


def _preset_card(task: str, dataset: str) -> dict[str, Any]:
    """The card fields a data set sets (labels and meta); a pose preset names a shipped keypoint set."""
    sets = _load_table().presets.get(task, {})
    if dataset not in sets:
        raise ValueError(f"no {task} preset {dataset!r} in {TABLE_FILE.name}; presets: {sorted(sets)}")
    preset = _plain(sets[dataset])
    name = preset.pop("keypoint_set", None)
    if name is not None:
        path = KEYPOINT_SETS / f"{name}.yaml"
        keypoints = yaml.safe_load(path.read_text(encoding="utf-8"))
        preset.setdefault("meta", {})["keypoint_set"] = keypoints
        preset["labels"] = list(keypoints["names"])
    return preset


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: the dicts ``meta``, ``test`` and ``overrides`` key by key, the rest replaced."""
    out = dict(base)
    for key, value in extra.items():
        if key in ("meta", "test", "overrides"):
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    if "labels" in extra:
        out["num_outputs"] = len(out["labels"])
    return out


def entry_card(item: PretrainedEntry) -> ModelCard:
    """The card an entry's weights get: the task's default card for the model, the data set's preset, then
    the entry's own settings; ``train`` records the weights' origin and published score (the digest
    measured at download is added by :func:`resolve_entry`)."""
    spec = get_spec(item.task)
    if spec.default_card is not None and item.layout != "torchvision":
        data = spec.default_card.load()(item.model, tuple(item.input_size)).to_dict()
    else:
        data = {"task": item.task, "model": item.model}
    data = _merged(data, _preset_card(item.task, item.dataset))
    data = _merged(data, _plain(dict(item.card)))
    data["input_size"] = list(item.input_size)
    data["train"] = _provenance(item)
    return ModelCard.from_dict(data, f"pretrained entry {item.name}")


def _provenance(item: PretrainedEntry, url: str | None = None, digest: str | None = None) -> dict[str, Any]:
    m = item.metric
    return {
        "metric": m.name,
        "value": m.value,
        "dataset": m.dataset,
        "protocol": m.protocol,
        "also": dict(m.also),
        "paper": item.paper.to_dict() if item.paper else None,
        "licence": item.licence,
        "source": item.source,
        "weights": {
            "entry": item.name,
            "url": url or item.urls[0],
            "sha256": digest or item.sha256,
            "layout": item.layout,
            "version": entry_version(item),
        },
    }


def entry_version(item: PretrainedEntry) -> str:
    """A short digest of everything that decides an entry's converted file (its fields and its preset): a
    cached file made from another version of the entry is converted again."""
    facts = dataclasses.asdict(item)
    for key in ("checked", "default", "size_mb"):  # bookkeeping that the converted file does not hold
        facts.pop(key)
    facts["card"] = dict(item.card)
    facts["preset"] = _load_table().presets.get(item.task, {}).get(item.dataset)
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- the cache


def cached_file(name: str) -> Path:
    """Where the converted, carded file of entry ``name`` lives (whether or not it is there)."""
    return cache_dir() / CACHE_SUBDIR / f"{entry(name).name}.safetensors"


def _carded_path(item: PretrainedEntry) -> Path:
    return cache_dir() / CACHE_SUBDIR / f"{item.name}.safetensors"


def _raw_path(url: str) -> Path | None:
    """Where the download layer keeps the upstream file of ``url`` (None for hub files, which the Hugging
    Face client caches itself)."""
    return None if url.startswith(HF_PREFIX) else cached_path(url, subdir=DOWNLOAD_SUBDIR)


def _is_current(path: Path, item: PretrainedEntry) -> bool:
    """True when ``path`` holds a card made from this very entry (a header read, no tensors, no pickle)."""
    if not path.is_file():
        return False
    try:
        card = read_card(path)
    except (ValueError, OSError):
        return False
    weights = (card.train.get("weights") or {}) if card is not None else {}
    return weights.get("entry") == item.name and weights.get("version") == entry_version(item)


def is_cached(name: str) -> bool:
    """True when entry ``name`` (or a model's default entry) is converted in the cache: it loads offline."""
    item = entry(name)
    return _is_current(_carded_path(item), item)


def resolve(name: str, *, progress: bool = True) -> Path:
    """The carded ``.safetensors`` of entry ``name`` (``model.tag``, or a bare model name for its default
    tag), downloaded, verified and converted on first use; see :func:`resolve_entry`."""
    return resolve_entry(entry(name), progress=progress)


def resolve_entry(item: PretrainedEntry, *, progress: bool = True) -> Path:
    """``cache_dir()/pretrained/<name>.safetensors`` for ``item``: returned as is when it is there and was
    made from this entry (nothing is unpickled, nothing downloaded); otherwise the upstream file is fetched
    (sha256 checked before it is read), loaded strictly into the network of the entry's card, and saved
    with that card, atomically.

    Errors: :class:`~hrnet.models.download.DownloadError` (an ``OSError``) naming the entry, its URL and
    the cache path when the file is not cached and cannot be downloaded; ``ValueError`` for a digest
    mismatch or a file that does not fit its entry.
    """
    target = _carded_path(item)
    if _is_current(target, item):
        return target
    raw, url, digest = _fetch_upstream(item, progress)
    card = entry_card(item)
    card = dataclasses.replace(card, train=_provenance(item, url, digest))
    model = _converted(item, raw, card)
    save_weights(model, target, card=card)
    log.info("%s: converted %s into %s", item.name, raw, target)
    return target


# ------------------------------------------------------------------------------- weights arguments


def is_zoo_name(text: object) -> bool:
    """True when a weights argument is meant as a zoo name (``model.tag``) rather than a file, a URL or a
    hub name: a string with a dot, no folder, no weights suffix, and no such file. A misspelt zoo name is
    one too, so that :func:`resolve_weights` answers it with the close names."""
    if not isinstance(text, str) or as_url(text) is not None or text.startswith(HF_PREFIX):
        return False
    if "/" in text or "\\" in text or Path(text).suffix.lower() in WEIGHT_SUFFIXES or Path(text).exists():
        return False
    model, dot, tag = text.partition(".")
    return bool(model and dot and tag)


def resolve_weights(src: str | Path, *, progress: bool = True) -> Path:
    """The local file of any weights argument: a zoo name (``pose_hrnet_w32.coco_256x192``, downloaded,
    verified and converted once by :func:`resolve`), a file, an ``http(s)://`` URL (cached; a
    ``#sha256=<hex>`` fragment is checked) or ``hf-hub:org/repo[/file]``. The one resolver behind every
    ``weights`` / ``--weights`` / ``--detector`` of the package.

    Errors: ``FileNotFoundError`` for a missing file (or a dotted name that is no zoo model); ``ValueError``
    naming close entries for a misspelt tag; :class:`~hrnet.models.download.DownloadError` (one line: the
    entry, its URL and the cache path to fill by hand) when a download is impossible.
    """
    if is_zoo_name(src):
        text = str(src)
        known = {e.model for e in _load_table().every}
        if _canonical(text.partition(".")[0]) not in known:
            raise FileNotFoundError(
                f"{text}: weights file not found, and no pretrained weights are named so "
                "(see `hrnet list --pretrained`)"
            )
        return resolve(text, progress=progress)
    return resolve_source(src)


def resolve_arguments(
    task: str, model: str | Path | nn.Module | None, weights: str | Path | None, *, pretrained: bool = False
) -> tuple[str | Path | nn.Module, Path | str | None, str | None]:
    """What a facade of ``task`` is given, with every weights form resolved to a local file.

    Returns ``(source, weights, given)`` for :func:`hrnet.models.resolve.resolve_model`: ``source`` a built
    module, a model name, or a local (carded) file; ``weights`` a local file or None; ``given`` how the user
    named the weights (zoo name, path, URL), or None for none (random weights). The rules:

    - nothing at all (``PoseEstimator()``): the task's default entry (:func:`task_default`);
    - a zoo name, a file, a URL or a hub name as ``model``: those weights, with their own card;
    - ``weights`` only: the same when they carry a card, else loaded into the default entry's model;
    - a bare model name: random weights (the facade warns), or its default tag with ``pretrained=True``, or
      ``weights`` of any form loaded into it.

    A zoo name of another task, or a torchvision person detector, is refused before anything is downloaded.
    """
    if isinstance(model, nn.Module):
        if pretrained:
            raise ValueError("pretrained=True applies to a model name, not to a built module")
        return model, None if weights is None else resolve_weights(weights), _given(weights)
    if model is None:
        if weights is None:
            item = task_default(task)
            return resolve_entry(item), None, item.name
        _check_task(weights, task)
        path = resolve_weights(weights)
        if read_card(path) is None:  # weights without a card: for the model of the task's default entry
            return task_default(task).model, path, str(weights)
        return path, None, str(weights)
    text = str(model)
    if is_zoo_name(model) or looks_like_weights(text):
        if weights is not None:
            raise ValueError(f"{text} is weights already: pass weights=... only beside a bare model name")
        if pretrained:
            raise ValueError(f"pretrained=True applies to a bare model name, not to {text}")
        _check_task(model, task)
        return resolve_weights(model), None, text
    if weights is not None:
        if pretrained:
            raise ValueError(f"{text}: give weights or pretrained=True, not both")
        _check_task(weights, task)
        return model, resolve_weights(weights), str(weights)
    if pretrained:
        item = entry(text)  # the default tag; one line naming the models with weights when it has none
        return resolve_entry(item), None, item.name
    return model, None, None


def command_weights(
    task: str,
    weights: str | None,
    *,
    model: str | None = None,
    config: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[str | None, Path | None]:
    """``--weights`` of a ``predict`` / ``export`` command: how it was given and its local file.

    With no ``--weights``, no ``--model``, no ``--config`` and no ``--set model.*`` the command does the
    obvious thing: the task's default entry (``hrnet pose predict photo.jpg``). A bare ``--model NAME``
    (or ``--config``) without weights stays random weights: ``(None, None)``.
    """
    if weights is None:
        if model is None and config is None and not any(o.strip().startswith("model.") for o in overrides):
            item = task_default(task)
            return item.name, resolve_entry(item)
        return None, None
    _check_task(weights, task)
    return str(weights), resolve_weights(weights)


def zoo_line(info: Mapping[str, Any] | None, what: str = "weights") -> str | None:
    """The console line a command prints about zoo weights it runs (None for other weights: a file the
    user named needs no introduction, and random weights have their own warning)."""
    return weights_line(info, what) if info is not None and "licence" in info else None


def _given(weights: str | Path | None) -> str | None:
    return None if weights is None else str(weights)


def _check_task(name: object, task: str) -> None:
    """Refuse a zoo name of another task (or a person detector) before it is downloaded."""
    if not is_zoo_name(name):
        return
    text = str(name)
    if _canonical(text.partition(".")[0]) not in {e.model for e in _load_table().every}:
        return  # resolve_weights says what is wrong with it
    item = entry(text)
    if item.layout == "torchvision":
        raise ValueError(
            f"{item.name} is a torchvision person detector for top-down pose (--detector / detector=), "
            f"not {task} weights"
        )
    if item.task != task:
        raise ValueError(f"{item.name} are {item.task!r} weights, not {task!r} weights")


def weights_info(card: ModelCard | None, given: str | Path | None = None) -> dict[str, Any] | None:
    """What ``results.json`` says about the weights a facade runs: for zoo weights their entry name,
    published metric, data set, licence, source, URL and sha256 (from the card, which keeps them); for
    other carded weights the name they were given by and their model; None without a card."""
    if card is None:
        return None
    train = card.train or {}
    origin = train.get("weights") or {}
    if not origin.get("entry"):
        return {"name": str(given) if given is not None else card.model, "model": card.model}
    try:
        metric = Metric.from_dict({"name": train["metric"], **train}, origin["entry"]).text()
    except ValueError:
        metric = str(train.get("metric", ""))
    out = {
        "name": origin["entry"],
        "model": card.model,
        "metric": metric,
        "dataset": train.get("dataset"),
        "protocol": train.get("protocol"),
        "licence": train.get("licence"),
        "source": train.get("source"),
        "url": origin.get("url"),
        "sha256": origin.get("sha256"),
    }
    paper = train.get("paper")
    if isinstance(paper, dict) and "value" in paper:
        out["paper"] = f"{paper.get('name', '')} {score_text(float(paper['value']))}".strip()
    return out


def weights_line(info: Mapping[str, Any] | None, what: str = "weights") -> str:
    """The one console line naming the weights used: ``weights: pose_hrnet_w32.coco_256x192 (AP 74.6,
    COCO val2017; licence Apache-2.0)``; a carded file of no entry shows its model."""
    if info is None:
        return f"{what}: none"
    if "licence" not in info:
        return f"{what}: {info['name']} ({info['model']})"
    if "metric" not in info:  # weights without a published score, e.g. the face detector's cascade
        return f"{what}: {info['name']} ({info.get('source') or info.get('model')}; licence {info['licence']})"
    return f"{what}: {info['name']} ({info['metric']}, {info['dataset']}; licence {info['licence']})"


def _fetch_upstream(item: PretrainedEntry, progress: bool) -> tuple[Path, str, str]:
    """The upstream file (from the first URL that works), the URL it came from and its full sha256."""
    first: DownloadError | None = None
    for url in item.urls:
        try:
            path = _fetch_one(item, url, progress)
        except DownloadError as err:
            first = first or err
            continue
        record = download_record(path)
        digest = record["sha256"] if record and len(str(record.get("sha256", ""))) == 64 else sha256_of(path)
        if item.sha256 and not digest.startswith(item.sha256):
            raise ValueError(f"{item.name}: {path} has sha256 {digest}, expected {item.sha256} ({url})")
        if item.sha256 is None:
            log.warning(
                "%s: the upstream publishes no sha256; this download's is %s (kept in the card)", item.name, digest
            )
        return path, url, digest
    assert first is not None
    raise first


def _fetch_one(item: PretrainedEntry, url: str, progress: bool) -> Path:
    if url.startswith(HF_PREFIX):
        if offline():  # HRNET_OFFLINE holds for hub entries too: their client's cache, or one line
            cached = _hub_cached(url)
            if cached is None:
                raise DownloadError(
                    f"{item.name}: {url} is not in the Hugging Face cache and {ENV_OFFLINE} is set; run "
                    f"`hrnet download {item.name}` where the hub can be reached, or pass the file as --weights"
                )
            return cached
        try:
            return resolve_source(url)  # the Hugging Face client: its own cache and offline mode
        except (FileNotFoundError, ImportError) as err:
            raise DownloadError(f"{item.name}: {err}") from err
    return fetch(url, item.sha256, subdir=DOWNLOAD_SUBDIR, progress=progress, name=f"pretrained {item.name}")


def _hub_cached(url: str) -> Path | None:
    """The local file of ``hf-hub:org/repo[/file]`` in the Hugging Face client's cache, without any network
    (None when it is not there, or the client is not installed)."""
    try:
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415 - optional extra (hrnet[hub])
    except ImportError:
        return None
    parts = url[len(HF_PREFIX) :].strip("/").split("/")
    filename = "/".join(parts[2:]) or "model.safetensors"
    found = try_to_load_from_cache("/".join(parts[:2]), filename)
    return Path(found) if isinstance(found, str) else None


def _converted(item: PretrainedEntry, raw: Path, card: ModelCard) -> nn.Module:
    """The entry's network with the upstream file loaded strictly (the file's layout checked first, so a
    wrong file is named as such rather than by a list of missing keys)."""
    state = read_raw_state_dict(raw)
    check_layout(state, item.layout, f"{item.name}: {raw}")
    if item.layout == "torchvision":
        return _torchvision_converted(item, raw, state, card)
    model = _model_from_card(card)
    try:
        load_weights(model, state, on_head_mismatch="error")
    except ValueError as err:
        raise ValueError(f"{item.name}: {raw} does not load into {item.model}: {err}") from err
    return model.eval()


def _torchvision_converted(
    item: PretrainedEntry, raw: Path, state: Mapping[str, torch.Tensor], card: ModelCard
) -> nn.Module:
    """A torchvision detector file loaded into its architecture: through ``load_state_dict``, whose hooks
    rename the keys of files saved by older torchvision versions (RPN head, FPN), then checked strictly but
    for the batch-norm counters those frozen-BN files never had."""
    model = build_torchvision_detector(item.model, card.num_outputs + 1)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        raise ValueError(f"{item.name}: {raw} does not load into {item.model}: {' '.join(str(err).split())}") from err
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{item.name}: {raw} does not load into {item.model}: {len(missing)} missing keys (e.g. "
            f"{', '.join(missing[:3])}), {len(result.unexpected_keys)} unexpected (e.g. "
            f"{', '.join(result.unexpected_keys[:3])})"
        )
    return model.eval()


def check_layout(state: Mapping[str, Any], layout: str, origin: str) -> None:
    """Raise a ``ValueError`` naming ``origin`` unless ``state``'s keys are those of ``layout``."""
    keys = {k[len("module.") :] if k.startswith("module.") else k for k in state}
    if not any(all(k in keys for k in option) for option in LAYOUT_KEYS[layout]):
        wanted = " or ".join("+".join(option) for option in LAYOUT_KEYS[layout])
        raise ValueError(f"{origin}: not a {layout} file (expected keys {wanted}; it has e.g. {sorted(keys)[:4]})")


def cache_files() -> list[tuple[Path, int]]:
    """The files of the zoo in the cache (converted and downloaded), with their sizes in bytes."""
    root = cache_dir()
    out = []
    for sub in (CACHE_SUBDIR, DOWNLOAD_SUBDIR):
        folder = root / sub
        if folder.is_dir():
            out += [(p, p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()]
    return out


def clean_cache(names: Sequence[str] = ()) -> list[tuple[Path, int]]:
    """Delete the cached files of entries ``names`` (converted file and upstream download), or, with no
    names, every file of the zoo's two cache folders; returns the deleted files with their sizes."""
    if not names:
        doomed = [p for p, _ in cache_files()]
    else:
        doomed = []
        for name in names:
            item = entry(name)
            doomed.append(_carded_path(item))
            for url in item.urls:
                raw = _raw_path(url)
                if raw is not None:
                    doomed += [raw, raw.with_name(raw.name + ".sha256")]
    removed = []
    for path in doomed:
        if path.is_file():
            size = path.stat().st_size
            path.unlink()
            removed.append((path, size))
    return removed


# ------------------------------------------------------------------------------------------ the listing


@functools.cache
def _param_count(architecture: str) -> int:
    card = ModelCard.from_dict(json.loads(architecture), "parameter count")
    with torch.device("meta"):
        if card.meta.get("framework") == "torchvision":
            model = build_torchvision_detector(card.model, card.num_outputs + 1)
            # the published files have frozen batch norm, whose scale and shift are buffers, not parameters:
            # counted as torchvision counts them
            frozen = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
            return sum(p.numel() for p in model.parameters() if id(p) not in frozen)
        model = _model_from_card(card)
    return sum(p.numel() for p in model.parameters())


def param_count(item: PretrainedEntry) -> int:
    """Parameters of the entry's network, counted on the meta device (nothing is allocated); entries that
    share an architecture (same model, head size and overrides) are built once per process."""
    card = entry_card(item).to_dict()
    for key in ("train", "test", "version", "input_size", "mean", "std"):  # no bearing on the parameters
        card.pop(key)
    return _param_count(json.dumps(card, sort_keys=True))


def pretrained_table(task: str | None = None) -> list[dict[str, Any]]:
    """One row per entry (of ``task``) for ``hrnet list --pretrained``: name, task, metric, input size,
    parameter count, file size in MB (of the cached file, else as published, else None), licence, cached.
    The torchvision person detectors are listed with the ``det`` rows (their task)."""
    rows = []
    for item in list_entries(task, person_detectors=True):
        path = _carded_path(item)
        cached = _is_current(path, item)
        size = path.stat().st_size / 1e6 if cached else item.size_mb
        rows.append(
            {
                "name": item.name,
                "task": item.task,
                "default": item.default,
                "metric": item.metric.text(),
                "dataset": item.metric.dataset,
                "metric_value": item.metric.value,
                "paper": item.paper.value if item.paper else None,
                "input": f"{item.input_size[0]}x{item.input_size[1]}",
                "params": param_count(item),
                "size_mb": None if size is None else round(size, 1),
                "licence": item.licence,
                "cached": cached,
                "source": item.source,
            }
        )
    return rows


def format_pretrained_table(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text lines of :func:`pretrained_table`'s rows: aligned columns, ``*`` marking default tags."""
    header = ("name", "task", "metric", "dataset", "paper", "input", "params", "size", "licence", "cached")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["name"] + (" *" if r["default"] else ""),
                r["task"],
                r["metric"],
                r["dataset"],
                "-" if r["paper"] is None else score_text(r["paper"]),
                r["input"],
                f"{r['params'] / 1e6:.1f}M",
                "-" if r["size_mb"] is None else f"{r['size_mb']:.0f} MB",
                r["licence"],
                "yes" if r["cached"] else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]


# --------------------------------------------------------------------------------------- command line


def _cmd_download(args: argparse.Namespace) -> int:
    names = [e.name for e in list_entries(person_detectors=True)] if args.names == ["all"] else args.names
    items = [entry(n) for n in names]  # every name checked before anything is downloaded
    for item in items:
        path = resolve_entry(item, progress=not args.quiet)
        print(f"{item.name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    if args.clean is not None:
        removed = clean_cache(args.clean)
        freed = sum(size for _, size in removed)
        print(f"removed {len(removed)} file(s), {freed / 1e6:.1f} MB, from {cache_dir()}")
        return 0
    files = cache_files()
    root = cache_dir()
    for path, size in files:
        print(f"{size / 1e6:10.1f} MB  {path.relative_to(root)}")
    print(f"{sum(s for _, s in files) / 1e6:10.1f} MB  in {len(files)} file(s) under {root}")
    return 0


def add_pretrained_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hrnet download NAME...`` and ``hrnet cache [--clean [NAME...]]`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "download",
        help="download and convert pretrained weights into the cache (then they load offline)",
        description="The cache is $HRNET_HOME (default ~/.cache/hrnet); HRNET_MIRROR=<base URL> replaces the "
        "download host (digests are still checked); HRNET_OFFLINE=1 never touches the network.",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model.tag, a model name (its default tag), or 'all'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_download)

    p = subparsers.add_parser("cache", help="list the pretrained-weights cache, or clean it")
    p.add_argument(
        "--clean",
        nargs="*",
        metavar="NAME",
        default=None,
        help="delete the cached files of these entries, or every cached file when no name is given",
    )
    p.set_defaults(func=_cmd_cache)


__all__ = [
    "LAYOUTS",
    "command_weights",
    "build_torchvision_detector",
    "is_zoo_name",
    "resolve_arguments",
    "resolve_weights",
    "task_default",
    "weights_info",
    "weights_line",
    "zoo_line",
    "Metric",
    "PretrainedEntry",
    "add_pretrained_commands",
    "cache_files",
    "cached_file",
    "check_layout",
    "clean_cache",
    "default_tag",
    "entry",
    "entry_card",
    "entry_version",
    "format_pretrained_table",
    "is_cached",
    "list_entries",
    "param_count",
    "presets",
    "pretrained_table",
    "resolve",
    "resolve_entry",
    "score_text",
]
