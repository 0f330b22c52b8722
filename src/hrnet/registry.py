"""The task registry: each task package declares itself in one :class:`TaskSpec` (its ``spec.py``), and
this module collects them.

Everything that lists or dispatches tasks (``hrnet list``, model cards, :func:`hrnet.load_model`, the
command line, export, the person detector that pose uses) reads these specs instead of keeping its own
table, so a new task is its folder and its ``spec.py``, nothing else: :func:`specs` finds every
``hrnet.<package>.spec`` module by looking at the package's folders. A spec names the task's parts as
``"module:attribute"`` references (:class:`Ref`), so reading the specs imports no task code: ``hrnet --help``
stays fast and a task's heavy dependencies load only when that task is used.
"""

from __future__ import annotations

import functools
import pkgutil
from dataclasses import dataclass, field
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Ref:
    """A lazy reference ``"package.module:attribute"`` to one object of a task package."""

    target: str

    def __post_init__(self) -> None:
        module, _, attr = self.target.partition(":")
        if not module or not attr:
            raise ValueError(f"reference must look like 'package.module:attribute', got {self.target!r}")

    @property
    def module(self) -> str:
        """The dotted module path (what the layering test reads as an import)."""
        return self.target.partition(":")[0]

    def load(self) -> Any:
        """Import the module and return the attribute."""
        module, _, attr = self.target.partition(":")
        obj: Any = import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass(frozen=True)
class ExportSpec:
    """How ``hrnet export`` writes a task's network: its output names raw and decoded, and the in-graph
    decoder ``decoder(model, card, flip: bool, topk: int) -> nn.Module``."""

    raw_outputs: tuple[str, ...]
    decoded_outputs: tuple[str, ...]
    decoder: Ref


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name (the one spelling used in cards, configs, model names and the CLI) and its parts.

    ``model_prefixes`` are the prefixes of the task's model names (the empty prefix, classification's
    ``hrnet_w32``, is the fallback); ``list_models(filter)`` and ``create_model(name, **kw)`` are its
    builders; ``model_from_card(card)`` rebuilds a trained network; ``default_card(name, input_size)``
    describes a bare model name (the labels of its paper dataset); ``check_card(card)`` raises one
    ``ValueError`` naming an entry the task needs and the card lacks; ``head_argument`` is the builder
    keyword of the head size. ``provides`` maps interface names to factories other tasks use through the
    registry (``person_detector``); ``requires`` lists the interfaces this task uses.
    """

    name: str
    package: str
    help: str
    model_prefixes: tuple[str, ...]
    list_models: Ref
    create_model: Ref
    default_input_size: Ref
    model_from_card: Ref
    check_card: Ref
    default_card: Ref | None
    head_argument: str
    facade: Ref
    config: Ref
    config_dir: str
    cli: Ref
    export: ExportSpec | None = None
    provides: dict[str, Ref] = field(default_factory=dict)
    requires: tuple[str, ...] = ()

    def refs(self) -> list[Ref]:
        """Every reference of the spec (the layering test checks that they stay inside the package)."""
        out = [
            self.list_models,
            self.create_model,
            self.default_input_size,
            self.model_from_card,
            self.check_card,
            self.facade,
            self.config,
            self.cli,
            *self.provides.values(),
        ]
        if self.default_card is not None:
            out.append(self.default_card)
        if self.export is not None:
            out.append(self.export.decoder)
        return out


@functools.cache
def specs() -> tuple[TaskSpec, ...]:
    """Every task's spec, in package-name order: the ``SPEC`` of each ``hrnet.<package>.spec`` module.

    Spec modules hold declarations only (task packages import their heavy parts lazily), so this is cheap.
    """
    found = []
    for info in sorted(pkgutil.iter_modules([str(_ROOT)]), key=lambda m: m.name):
        if info.ispkg and (_ROOT / info.name / "spec.py").is_file():
            module = f"hrnet.{info.name}.spec"
            if find_spec(module) is None:  # pragma: no cover - a folder without __init__.py
                continue
            spec = import_module(module).SPEC
            if spec.package != f"hrnet.{info.name}":
                raise RuntimeError(f"{module}: SPEC.package is {spec.package!r}, expected 'hrnet.{info.name}'")
            found.append(spec)
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two task specs share a name: {names}")
    return tuple(found)


def names() -> tuple[str, ...]:
    """The task names (``pose``, ``seg``, ...): the one spelling of each task in cards, configs and the CLI."""
    return tuple(s.name for s in specs())


def get(name: str) -> TaskSpec:
    """The spec of task ``name``; an unknown name is one line listing the known ones."""
    for spec in specs():
        if spec.name == name:
            return spec
    raise ValueError(f"unknown task {name!r}; tasks: {', '.join(names())}")


def spec_of_model(name: str) -> TaskSpec:
    """The task a model name belongs to, by its longest matching prefix (``pose_hrnet_w32`` -> pose,
    ``faster_rcnn_hrnet_w32`` -> det, ``hrnet_w32`` -> cls, whose prefix is empty)."""
    best = max(
        ((prefix, spec) for spec in specs() for prefix in spec.model_prefixes if name.startswith(prefix)),
        key=lambda item: len(item[0]),
        default=None,
    )
    if best is None:  # pragma: no cover - the classification spec's empty prefix matches every name
        raise ValueError(f"no task owns the model name {name!r}")
    return best[1]


def provider(interface: str) -> Ref:
    """The factory that some task provides for ``interface`` (e.g. ``person_detector``); tasks use each
    other only through these, so no task imports another."""
    found = [spec.provides[interface] for spec in specs() if interface in spec.provides]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} tasks provide {interface!r}; exactly one must")
    return found[0]
