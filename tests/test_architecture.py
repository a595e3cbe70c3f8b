"""The layers of docs/architecture.md, enforced: which package may import which, and no circles.

Every ``import finecliper...`` in src/ counts, also those inside functions (a lazy import is still
a dependency). The rules and the circle check run on the real tree and, to show they can fail, on
small fake trees holding one forbidden import or one circle.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "finecliper"

CORE = {"errors", "io", "closing", "config_base", "assets_paths", "registry", "argtypes"}
PROGRAMS = {"train", "serve", "bench", "demo", "cli", "__main__"}
# package (first name under finecliper) -> packages it must never import
FORBIDDEN = {
    "model": {"data", "face", "text", "runtime", "config", *PROGRAMS},
    "runtime": PROGRAMS,
    "data": PROGRAMS,
    "face": PROGRAMS,
    "text": PROGRAMS,
    "config": {"face", "text", "runtime", *PROGRAMS},
    "serve": {"train", "bench", "demo"},
    "bench": {"train", "serve", "demo"},
    "train": {"serve", "bench"},
    **{name: {"model", "data", "face", "text", "runtime", "config", *PROGRAMS} for name in CORE},
}


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package: Path) -> Iterator[tuple[str, str, int]]:
    """(importing module, imported module, line) for every finecliper import in ``package``."""
    modules = {module_name(p, package) for p in package.rglob("*.py")}
    for path in sorted(package.rglob("*.py")):
        source = module_name(path, package)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from finecliper.data import dataset`` imports the submodule itself
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == package.name:
                    yield source, target, node.lineno


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layering_violations(package: Path) -> list[str]:
    return [
        f"{source} imports {target} (line {line})"
        for source, target, line in imports(package)
        if layer(target) in FORBIDDEN.get(layer(source), set())
    ]


def import_cycles(package: Path) -> list[list[str]]:
    """Strongly connected groups of modules. The root ``finecliper`` module is left out: it only
    holds ``__version__`` and a lazy ``Predictor`` attribute, and every module's import of the
    package runs it first anyway."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in imports(package):
        if package.name not in (source, target):
            graph.setdefault(source, set()).add(target)
    order = itertools.count()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = next(order)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def fake_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "finecliper"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return package


def test_the_package_keeps_its_layers():
    assert layering_violations(PACKAGE) == []


def test_the_package_has_no_import_cycle():
    assert import_cycles(PACKAGE) == []


@pytest.mark.parametrize(
    ("source", "statement"),
    [
        ("serve/web.py", "from finecliper.train.loop import train"),
        ("bench/suite.py", "import finecliper.train.runs"),
        ("data/pack.py", "from finecliper.train import loop"),
        ("model/network.py", "from finecliper.data.dataset import ClipBatch"),
        ("runtime/inputs.py", "def f():\n    from finecliper.serve.predictor import Predictor\n"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, source, statement):
    package = fake_package(tmp_path, {source: statement + "\n"})
    assert len(layering_violations(package)) == 1


def test_an_allowed_import_passes(tmp_path):
    package = fake_package(tmp_path, {"serve/web.py": "from finecliper.runtime import device\n"})
    assert layering_violations(package) == []


def test_an_import_cycle_is_caught(tmp_path):
    package = fake_package(
        tmp_path,
        {
            "train/loop.py": "from finecliper.train.results import write_results\n",
            "train/results.py": "def f():\n    from finecliper.train.loop import train\n",
        },
    )
    assert import_cycles(package) == [["finecliper.train.loop", "finecliper.train.results"]]
