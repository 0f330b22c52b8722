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
This module is above the task packages (like the CLI): each task's spec (:mod:`hrnet.registry`) declares
its output names and its decoder, and a task without one (detection) cannot be exported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrnet.atomic import atomic_path, write_bytes
from hrnet.loader import load_model, model_from_card
from hrnet.models.card import CARD_KEY, ModelCard, card_from_metadata, read_card
from hrnet.models.fuse import fuse
from hrnet.models.sources import looks_like_weights
from hrnet.models.weights import load_weights
from hrnet.pretrained import entry, is_zoo_name, resolve_weights
from hrnet.registry import ExportSpec, spec_of_model, specs
from hrnet.registry import get as get_spec
from hrnet.runtime import ONNX_OPSET, ort_session, quiet_exporter, relative_error, to_onnx

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def _export_spec(card: ModelCard, source: object) -> ExportSpec:
    """The task's export declaration; tasks without one (detection) are refused with one line."""
    spec = get_spec(card.task).export
    if spec is None:
        exportable = ", ".join(s.name for s in specs() if s.export is not None)
        raise ValueError(f"{source}: export supports {exportable} models, not {card.task!r}")
    return spec


def load_source(
    source: str | Path,
    pretrained: bool = False,
    input_size: tuple[int, int] | None = None,
    weights: str | Path | None = None,
) -> tuple[nn.Module, ModelCard]:
    """The eval-mode model and its card.

    ``source`` is any weights argument (a zoo name such as ``pose_hrnet_w32.coco_256x192``, a carded file, a
    URL or hub name: :func:`hrnet.pretrained.resolve_weights`), or a model name: random weights, the weights
    of its default zoo tag with ``pretrained``, or ``weights`` of any form, e.g. an official uncarded ``.pth``
    (loaded strictly into the task's default card of that name: the paper dataset's labels and input size).
    """
    text = str(source)
    named = not (looks_like_weights(text) or is_zoo_name(source))
    if weights is not None and not named:
        raise ValueError(f"{source} is weights already: give --weights only beside a model name")
    if pretrained and (weights is not None or not named):
        raise ValueError("--pretrained applies to a bare model name without --weights")
    if pretrained:
        text = entry(text).name  # the default tag; one line naming the models with weights when it has none
    if weights is None and (not named or pretrained):
        model = load_model(text)
        card = model.card
    else:
        spec = spec_of_model(text)
        path = resolve_weights(weights) if weights is not None else None
        carded = read_card(path) if path is not None else None
        if carded is not None:
            if carded.model != text:
                raise ValueError(f"{weights}: the weights are a {carded.model}, not a {text}; pass the file alone")
            model = load_model(path)
            card = model.card
        else:
            if spec.default_card is None:
                raise ValueError(f"{source}: export supports {spec.name} models only from a carded weights file")
            card = spec.default_card.load()(text, input_size)
            model = model_from_card(card)
            if path is not None:
                try:
                    load_weights(model, path, on_head_mismatch="error")
                except ValueError as err:
                    raise ValueError(f"{weights}: {err}") from err
    _export_spec(card, source)
    return model.eval(), card


def decoded_module(model: nn.Module, card: ModelCard, flip: bool = False, topk: int = 5) -> nn.Module:
    """``model`` wrapped by its task's in-graph decoder (the card says the task, keypoint pairs, classes)."""
    return _export_spec(card, card.model).decoder.load()(model, card, flip, topk)


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
    weights: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``source`` (weights, a model name with ``weights`` or ``pretrained``, or module + ``card``) as
    ONNX or TorchScript; returns a summary (see :func:`load_source` for the sources).

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
        model, card = load_source(source, pretrained, input_size, weights)
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
    spec = _export_spec(card, source if not isinstance(source, nn.Module) else card.model)
    names = list(spec.decoded_outputs if decode else spec.raw_outputs)
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
        write_bytes(output, proto.SerializeToString())
    else:
        with torch.no_grad(), quiet_exporter():
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        with atomic_path(output) as tmp, quiet_exporter():
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
    import onnx  # noqa: PLC0415 - optional extra (hrnet[onnx])

    proto = onnx.load(str(path), load_external_data=False)
    return card_from_metadata({p.key: p.value for p in proto.metadata_props}, str(path))


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``hrnet export`` on the top-level subcommands."""
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript (optionally with decoding)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "source",
        metavar="WEIGHTS_OR_NAME",
        help="a zoo name (model.tag, hrnet list --pretrained), a carded weights file, URL or hf-hub: name, "
        "or a model name (with --weights, --pretrained, or alone: random weights)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="weights for a model name: a file without a model card (official / mmpose / mmseg / timm), "
        "a zoo name, a URL or an hf-hub: name",
    )
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
    p.add_argument("--pretrained", action="store_true", help="model name: the published weights of its default zoo tag")
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
        weights=args.weights,
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
