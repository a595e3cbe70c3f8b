"""Named plug-ins (dataset readers, description backends) registered with one decorator.

A plug-in is one module of its package whose function or class carries the decorator, e.g.
``@register_backend("template", default_model="...")``. The registry finds the names without
importing those modules: it reads their source for the decorator (so the name and keyword values
in it must be literals, and the decorator must be called by its own name), and imports a module
only when its plug-in is first used. That keeps heavy libraries (torch, transformers) out of
``finecliper --help``. A decorator run anywhere else (a test, a user's script) registers at once.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from finecliper.errors import FineCLIPERError

T = TypeVar("T")


@dataclass(frozen=True)
class Declaration:
    """A registration found in a module's source: where it is and its decorator's keywords."""

    module: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registered(Generic[T]):
    """A plug-in whose decorator has run."""

    target: T
    info: dict[str, Any]


class Registry(Generic[T]):
    """Plug-ins of one kind ("dataset", "backend"), declared in the modules of ``package``."""

    def __init__(self, kind: str, package: str, decorator: str) -> None:
        self.kind = kind
        self._package = package
        self._decorator = decorator
        self._registered: dict[str, Registered[T]] = {}
        self._declarations: dict[str, Declaration] | None = None

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator: make ``target`` available as ``name``; a name is taken once."""

        def add(target: T) -> T:
            module = getattr(target, "__module__", "")
            declared = self._declared().get(name)
            if declared is not None and declared.module != module:
                raise FineCLIPERError(
                    f"{self.kind} {name!r} is registered twice ({declared.module} and {module})"
                )
            existing = self._registered.get(name)
            if existing is not None and not _same_definition(existing.target, target):
                raise FineCLIPERError(
                    f"{self.kind} {name!r} is registered twice "
                    f"({getattr(existing.target, '__module__', '?')} and {module})"
                )
            self._registered[name] = Registered(target, dict(info))
            return target

        return add

    def unregister(self, name: str) -> None:
        """Forget a plug-in registered at run time (tests clean up with this)."""
        self._registered.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted, without importing any plug-in module."""
        return tuple(sorted({*self._declared(), *self._registered}))

    def info(self, name: str) -> dict[str, Any]:
        """The decorator's keywords of ``name`` (without importing its module)."""
        if name in self._registered:
            return self._registered[name].info
        declared = self._declared().get(name)
        return {} if declared is None else declared.info

    def get(self, name: str) -> Registered[T] | None:
        """The plug-in ``name``, importing its module on first use; None when unknown."""
        if name not in self._registered:
            declared = self._declared().get(name)
            if declared is None:
                return None
            importlib.import_module(declared.module)
            if name not in self._registered:
                raise FineCLIPERError(
                    f"{declared.module} declares {self.kind} {name!r} but importing it did not "
                    "register it"
                )
        return self._registered[name]

    def _declared(self) -> dict[str, Declaration]:
        if self._declarations is None:
            self._declarations = self._scan()
        return self._declarations

    def _scan(self) -> dict[str, Declaration]:
        found: dict[str, Declaration] = {}
        for folder in sys.modules[self._package].__path__:
            for path in sorted(Path(folder).glob("*.py")):
                if path.stem == "__init__":
                    continue
                module = f"{self._package}.{path.stem}"
                for name, info in _decorations(path, self._decorator):
                    if name in found:
                        raise FineCLIPERError(
                            f"{self.kind} {name!r} is registered twice ({found[name].module} "
                            f"and {module})"
                        )
                    found[name] = Declaration(module, info)
        return found


def _same_definition(first: object, second: object) -> bool:
    """The same function or class defined again (its module was reloaded)."""
    return all(
        getattr(first, attribute, None) == getattr(second, attribute, None)
        for attribute in ("__module__", "__qualname__")
    )


def _decorations(path: Path, decorator: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, keywords) of every ``@decorator("name", key=literal, ...)`` in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for call in node.decorator_list:
            if isinstance(call, ast.Call) and _called_name(call.func) == decorator:
                found.append(_literal_arguments(call, path))
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_arguments(call: ast.Call, path: Path) -> tuple[str, dict[str, Any]]:
    where = f"{path}:{call.lineno}"
    try:
        (name,) = (ast.literal_eval(argument) for argument in call.args)
        info = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    except ValueError as exc:
        raise FineCLIPERError(
            f"{where}: a registration takes one name and literal keyword values, so that it "
            f"can be read without importing the module ({exc})"
        ) from exc
    if not isinstance(name, str) or None in info:
        raise FineCLIPERError(f"{where}: a registration's name must be a string literal")
    return name, info
