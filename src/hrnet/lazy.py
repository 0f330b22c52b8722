"""Lazy package attributes, so that ``import hrnet.<task>`` (and the task registry, which imports every
task's ``spec``) costs nothing until a task's class or function is actually used."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package module whose exported names are imported from their submodules on first access.

    An export may share its name with a submodule (``hrnet.classification.train`` the module and
    ``train`` the function): importing the submodule makes Python set the package attribute to the
    module, so attribute lookup checks for that and answers with the export instead.
    """

    _lazy_where: dict[str, str]

    def __getattr__(self, name: str) -> Any:  # only called for names not set yet
        where = self.__dict__.get("_lazy_where", {})
        if name in where:
            value = getattr(import_module(where[name]), name)
            self.__dict__[name] = value
            return value
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if isinstance(value, types.ModuleType) and not name.startswith("__"):
            where = super().__getattribute__("__dict__").get("_lazy_where", {})
            if name in where and value.__name__ == f"{self.__name__}.{name}":
                value = getattr(import_module(where[name]), name)
                self.__dict__[name] = value
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_lazy_where", {})))


def lazy_package(package: str, exports: Mapping[str, Sequence[str]]) -> list[str]:
    """Make ``package`` (pass ``__name__``) export ``exports`` lazily; returns its ``__all__``.

    ``exports`` maps a submodule (``"hrnet.pose.api"``) to the names it provides.
    """
    for module in exports:
        if not module.startswith(package + "."):
            raise ValueError(f"{package}: lazy export from {module!r}, outside the package")
    module_object = sys.modules[package]
    module_object.__class__ = _LazyPackage
    module_object._lazy_where = {name: sub for sub, names in exports.items() for name in names}
    return sorted(module_object._lazy_where)
