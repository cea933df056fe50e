"""Names -> classes imported on first use: the one registry helper behind sources and hand estimators
(a backend's heavy or optional imports happen only when it is chosen; the names feed the CLI choices)."""

from __future__ import annotations

import importlib
from typing import Any


class LazyRegistry:
    """``name -> "package.module:Attr"`` targets of one kind of thing (e.g. "source").

    ``reserved`` maps names that are known but not part of this build to the reason, given in the
    error instead of the list of known names. Unknown names raise ``error`` (ValueError or KeyError).
    """

    def __init__(self, kind: str, targets: dict[str, str], reserved: dict[str, str] | None = None,
                 error: type[Exception] = ValueError):
        self.kind = kind
        self.targets = dict(targets)
        self.reserved = dict(reserved or {})
        self.error = error

    def register(self, name: str, target: str) -> None:
        """Register ``"package.module:Attr"`` under ``name`` (replaces an earlier registration)."""
        if ":" not in target:
            raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
        self.targets[name] = target

    def names(self) -> list[str]:
        """The registered names, sorted (what a CLI offers as choices)."""
        return sorted(self.targets)

    def load(self, name: str) -> Any:
        """The class registered under ``name`` (imports its module)."""
        if name not in self.targets:
            hint = self.reserved.get(name, f"known: {', '.join(self.names())}")
            raise self.error(f"unknown {self.kind} {name!r} ({hint})")
        module_name, _, attr = self.targets[name].partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def create(self, name: str, **options: Any) -> Any:
        """An instance of ``name`` built with ``options``."""
        return self.load(name)(**options)
