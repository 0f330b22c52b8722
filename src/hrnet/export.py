"""``hrnet export``: a model to ONNX or TorchScript, with its model card and optionally its decoding in the graph.

The exported network is the BN-folded model (:func:`hrnet.models.fuse.fuse`) at a fixed H x W, so every
resize has a constant output size (what TensorRT's ONNX parser and static-shape runtimes need); the batch
axis is dynamic with ``--dynamic-batch``. With ``--decode`` the graph also does the task's
post-processing (:mod:`hrnet.pose.decode`, :mod:`hrnet.segmentation.decode`,
:mod:`hrnet.classification.decode`), so a runtime user needs no Python:

=====  ==========================  =============================================================
task   raw outputs                 ``--decode`` outputs
=====  ==========================  =============================================================
pose   ``heatmaps`` (N, K, H/4, W/4)  ``keypoints`` (N, K, 2) x, y in input-crop pixels, ``scores`` (N, K)
seg    ``logits`` (N, C, H/4, W/4)    ``labels`` (N, H, W) int64
cls    ``logits`` (N, C)              ``scores`` (N, k) softmax, ``indices`` (N, k) int64
=====  ==========================  =============================================================

The model card (JSON) is stored in the ONNX ``metadata_props`` under :data:`hrnet.models.card.CARD_KEY`
(and as a TorchScript extra file of that name), next to ``hrnet.outputs`` / ``hrnet.decode`` entries.
This module is above the task packages (like the CLI): it imports a task's decode module by the card's task.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrnet import atomic
from hrnet.models.card import CARD_KEY, ModelCard
from hrnet.models.fuse import fuse
from hrnet.runtime import ONNX_OPSET, quiet_exporter, relative_error, to_onnx

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
RAW_OUTPUTS = {"pose": ["heatmaps"], "seg": ["logits"], "cls": ["logits"]}
DECODED_OUTPUTS = {"pose": ["keypoints", "scores"], "seg": ["labels"], "cls": ["scores", "indices"]}
ZOO_TASKS = {"pose_": "pose", "seg_": "seg"}  # name prefix -> task; no prefix: classification


def _zoo_card(name: str, input_size: tuple[int, int] | None) -> ModelCard:
    """A card for a zoo name: COCO keypoints, Cityscapes classes or ImageNet classes, the paper's input size."""
    from hrnet.models.zoo import default_input_size

    task = next((t for p, t in ZOO_TASKS.items() if name.startswith(p)), "cls")
    size = list(input_size or default_input_size(name))
    if task == "pose":
        from hrnet.pose.keypoints import load_keypoint_set
        from hrnet.pose.model import keypoint_set_to_dict

        ks = load_keypoint_set("coco")
        return ModelCard(
            task="pose",
            model=name,
            num_outputs=ks.num_keypoints,
            labels=list(ks.names),
            input_size=size,
            meta={"keypoint_set": keypoint_set_to_dict(ks)},
            test={"flip_test": True, "shift_heatmap": True, "dark": False},
        )
    if task == "seg":
        from hrnet.segmentation.labels import dataset_classes

        names, palette, pairs = dataset_classes("cityscapes")
        return ModelCard(
            task="seg",
            model=name,
            num_outputs=len(names),
            labels=names,
            input_size=size,
            meta={"palette": [list(c) for c in palette], "flip_pairs": [list(p) for p in pairs]},
        )
    from hrnet.classification.classes import imagenet_classes

    classes = imagenet_classes()
    return ModelCard(task="cls", model=name, num_outputs=len(classes), labels=[n for _, n in classes], input_size=size)


def load_source(
    source: str | Path, pretrained: bool = False, input_size: tuple[int, int] | None = None
) -> tuple[nn.Module, ModelCard]:
    """The eval-mode model and its card, from a carded weights file or a zoo name (random or pretrained weights)."""
    text = str(source)
    path = Path(text)
    if path.suffix in (".safetensors", ".pth", ".pt", ".bin") or path.exists() or text.startswith("hf-hub:"):
        if not text.startswith("hf-hub:") and not path.is_file():
            raise FileNotFoundError(f"{path}: no such weights file")
        from hrnet.loader import load_model

        model = load_model(text)
        card = model.card
    else:
        from hrnet.models.zoo import create_from_card

        card = _zoo_card(text, input_size)
        model = create_from_card(card)
        if pretrained:
            from hrnet.models.weights import load_pretrained

            load_pretrained(model, text, True)
    if card.task not in RAW_OUTPUTS:
        raise ValueError(f"{source}: export supports pose, seg and cls models, not {card.task!r}")
    return model.eval(), card


def decoded_module(model: nn.Module, card: ModelCard, flip: bool = False, topk: int = 5) -> nn.Module:
    """``model`` wrapped by its task's in-graph decoder (the card says the task, keypoint pairs, classes)."""
    if card.task == "pose":
        from hrnet.pose.decode import PoseDecoder

        pairs = card.meta.get("keypoint_set", {}).get("flip_pairs", []) if flip else None
        shift = bool(card.test.get("shift_heatmap", True))
        return PoseDecoder(model, flip_pairs=pairs, shift=shift, num_joints=card.num_outputs)
    if card.task == "seg":
        from hrnet.segmentation.decode import SegDecoder

        perm = None
        if flip and card.meta.get("flip_pairs"):
            from hrnet.segmentation.labels import flip_permutation

            perm = flip_permutation(card.num_outputs, [tuple(p) for p in card.meta["flip_pairs"]])
        return SegDecoder(model, flip=flip, flip_perm=perm)
    from hrnet.classification.decode import ClsDecoder

    return ClsDecoder(model, topk=topk, num_classes=card.num_outputs)


def export(
    source: str | Path | nn.Module,
    output: str | Path | None = None,
    *,
    format: str = "onnx",
    card: ModelCard | None = None,
    decode: bool = False,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    batch_size: int = 1,
    flip: bool = False,
    topk: int = 5,
    opset: int = ONNX_OPSET,
    pretrained: bool = False,
    check: bool = True,
) -> dict[str, Any]:
    """Write ``source`` (weights file, zoo name, or module + ``card``) as ONNX or TorchScript; returns a summary.

    ``input_size`` (H, W) defaults to the card's; ``batch_size`` is the exported batch (dynamic with
    ``dynamic_batch``); ``flip`` adds the flip test to a decoded pose / seg graph; ``topk`` sizes the
    classification top-k. With ``check`` the written file is run (onnxruntime / ``torch.jit.load``) on a
    random batch and compared with the eager module. The summary has ``path``, ``inputs``, ``outputs``,
    ``max_rel_error`` (float outputs) and ``equal_fraction`` (integer outputs).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(source, nn.Module):
        if card is None:
            raise ValueError("exporting a module needs its model card (card=)")
        model = source.eval()
    else:
        model, card = load_source(source, pretrained, input_size)
    size = tuple(int(v) for v in (input_size or card.input_size or ()))
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{card.model}: give --input-size H W (the card has no input size)")
    if model.training:
        raise ValueError("export needs a model in eval mode; call model.eval() first")
    check_input = getattr(model, "check_input", None)
    example = torch.randn(max(1, batch_size), 3, *size, generator=torch.Generator().manual_seed(0))
    if check_input is not None:
        check_input(example)
    net = fuse(model).cpu()
    module = decoded_module(net, card, flip, topk) if decode else net
    module.eval()
    names = (DECODED_OUTPUTS if decode else RAW_OUTPUTS)[card.task]
    if output is None:
        stem = Path(str(source)).stem if not isinstance(source, nn.Module) else card.model
        output = Path(f"{stem}{'-decode' if decode else ''}{SUFFIX[format]}")
    output = Path(output)
    card_json = card.to_json()
    metadata = {
        CARD_KEY: card_json,
        "hrnet.outputs": json.dumps(names),
        "hrnet.decode": json.dumps(decode),
        "hrnet.input_size": json.dumps(list(size)),
    }
    if format == "onnx":
        proto = to_onnx(
            module, example, dynamic_batch=dynamic_batch, opset=opset, output_names=names, metadata=metadata
        )
        atomic.write_bytes(output, proto.SerializeToString())
    else:
        with torch.no_grad(), quiet_exporter():
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        with atomic.atomic_path(output) as tmp, quiet_exporter():
            torch.jit.save(traced, str(tmp), _extra_files=metadata)
    summary: dict[str, Any] = {
        "path": str(output),
        "format": format,
        "task": card.task,
        "model": card.model,
        "decode": decode,
        "input": [batch_size if not dynamic_batch else "N", 3, *size],
        "outputs": names,
    }
    if check:  # against the unfused eager model, so the summary's error includes the folding
        reference = decoded_module(model, card, flip, topk) if decode else model
        summary.update(_check(output, format, reference.eval(), example, dynamic_batch))
    return summary


def _run_exported(path: Path, format: str, x: torch.Tensor) -> list[torch.Tensor]:
    if format == "onnx":
        from hrnet.runtime import ort_session

        sess = ort_session(path.read_bytes(), torch.device("cpu"))
        return [torch.from_numpy(o) for o in sess.run(None, {sess.get_inputs()[0].name: x.numpy()})]
    with quiet_exporter():
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        out = loaded(x)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _check(path: Path, format: str, module: nn.Module, example: torch.Tensor, dynamic_batch: bool) -> dict[str, Any]:
    """Run the written file and the eager module on the same batch; errors of float, agreement of int outputs."""
    x = torch.cat([example, example.flip(0)]) if dynamic_batch else example  # a second batch size when dynamic
    with torch.no_grad():
        ref = module(x)
    ref = list(ref) if isinstance(ref, (list, tuple)) else [ref]
    got = _run_exported(path, format, x)
    errors = [relative_error(r, g) for r, g in zip(ref, got) if r.is_floating_point()]
    equal = [float((r == g).float().mean()) for r, g in zip(ref, got) if not r.is_floating_point()]
    return {"max_rel_error": max(errors) if errors else None, "equal_fraction": min(equal) if equal else None}


def read_onnx_card(path: str | Path) -> ModelCard | None:
    """The model card stored in an exported ONNX file's metadata (None when it has none)."""
    import onnx

    from hrnet.models.card import card_from_metadata

    proto = onnx.load(str(path), load_external_data=False)
    return card_from_metadata({p.key: p.value for p in proto.metadata_props}, str(path))


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``hrnet export`` on the top-level subcommands."""
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript (optionally with decoding)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("source", metavar="WEIGHTS_OR_NAME", help="a weights file with a model card, or a zoo name")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("-o", "--output", default=None, help="output file (default: <name>[-decode].onnx|.pt here)")
    p.add_argument(
        "--decode",
        action="store_true",
        help="add the task's post-processing to the graph (pose keypoints, seg labels, cls top-k)",
    )
    p.add_argument("--flip", action="store_true", help="with --decode: flip test in the graph (pose, seg)")
    p.add_argument("--topk", type=int, default=5, help="with --decode for cls: classes returned (default 5)")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=None,
        help="input height and width (default: the card's)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="exported batch size (default 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch axis dynamic")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (>= 17, default {ONNX_OPSET})")
    p.add_argument("--pretrained", action="store_true", help="zoo name: load the published ImageNet weights")
    p.add_argument("--no-check", action="store_true", help="skip running the written file against eager")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    """``hrnet export`` -> 0; bad input raises ValueError / FileNotFoundError (the CLI prints one line)."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    summary = export(
        args.source,
        args.output,
        format=args.format,
        decode=args.decode,
        input_size=tuple(args.input_size) if args.input_size else None,
        dynamic_batch=args.dynamic_batch,
        batch_size=args.batch_size,
        flip=args.flip,
        topk=args.topk,
        opset=args.opset,
        pretrained=args.pretrained,
        check=not args.no_check,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"wrote {summary['path']}  ({summary['format']}, {summary['task']} {summary['model']}, "
        f"input {'x'.join(str(v) for v in summary['input'])}, outputs {', '.join(summary['outputs'])})"
    )
    if summary.get("max_rel_error") is not None:
        print(f"  check: max relative error vs eager {summary['max_rel_error']:.1e}")
    if summary.get("equal_fraction") is not None:
        print(f"  check: integer outputs equal to eager on {100 * summary['equal_fraction']:.2f} %")
    return 0
