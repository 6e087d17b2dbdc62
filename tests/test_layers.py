"""The import layers of the package: every module imports only from its own layer or the ones below.

Imports anywhere in a module count (a function-level import is still a dependency), and so does the package
that a module sits in (importing `mtsent.data.readers` runs `mtsent/data/__init__.py` first). The package root
`mtsent/__init__.py` is the public facade on top of everything and is left out. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("mtsent._lazy", "mtsent.config", "mtsent.inputs", "mtsent.data.errors", "mtsent.data.examples"),
    (
        "mtsent.pooling",
        "mtsent.adapters",
        "mtsent.delta",
        "mtsent.heads",
        "mtsent.precision",
        "mtsent.fused",
        "mtsent.quantization",
        "mtsent.checkpoint",
        "mtsent.model_card",
        "mtsent.st_format",
        "mtsent.batching",
        "mtsent.spans",
        "mtsent.decoding",
        "mtsent.metrics",
    ),
    ("mtsent.data",),  # reading, splitting, aligning, sampling: no model, no task type classes
    ("mtsent.encoder",),
    ("mtsent.tasks",),
    ("mtsent.model",),
    (
        "mtsent.inference",
        "mtsent.tables",
        "mtsent.data.inspect",
        "mtsent.training",
        "mtsent.serving",
        "mtsent.export",
        "mtsent.corpus",
    ),
    ("mtsent.demo", "mtsent.app", "mtsent.data.cli"),
    ("mtsent.cli", "mtsent.__main__"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((SRC / "mtsent").rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of the longest listed prefix of `module`."""
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (i, name)
    if best is None:
        raise KeyError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py and docs/architecture.md")
    return best[0]


def imports(module: str) -> set[str]:
    """The mtsent modules that `module` imports explicitly, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
    return {m for m in found if m in MODULES and m != "mtsent"}


def with_packages(module: str) -> set[str]:
    """`module` and the packages Python initialises to import it (the root excepted)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts) + 1)}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "mtsent"))
def test_imports_only_go_down(module):
    own = layer(module)
    upward = sorted(
        f"{target} (layer {layer(target)})"
        for imported in imports(module)
        for target in with_packages(imported)
        if layer(target) > own and not module.startswith(target + ".")
    )
    assert not upward, f"{module} (layer {own}) imports from a higher layer: {', '.join(upward)}"


def test_no_import_cycles():
    graph = {m: imports(m) for m in MODULES if m != "mtsent"}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The two checks above can fail: a made-up graph with a cycle, and a real upward edge."""
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())
    assert layer("mtsent.model") > layer("mtsent.encoder") > layer("mtsent.config")
    assert "mtsent.encoder" in imports("mtsent.model")
