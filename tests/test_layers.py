"""Which part of chimein may import which: the layer contracts in pyproject.toml ([tool.importlinter], checked
by import-linter) hold, and no chain of imports inside chimein comes back to where it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

import chimein
from tests.helpers import REPO

SRC = Path(chimein.__file__).resolve().parents[1]  # the chimein under test, also in lint-imports' process
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_the_layer_contracts_hold():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself), by Tarjan."""
    modules = sorted(graph.find_descendants(package) | {package})
    imports = {m: sorted(graph.find_modules_directly_imported_by(m) & set(modules)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth is bounded by the chain length (a few dozen modules)
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1 or module in imports[module]:
                cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_inside_chimein():
    graph = grimp.build_graph("chimein", cache_dir=None)
    assert import_cycles(graph, "chimein") == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    assert import_cycles(graph, "p") == []
    graph.add_import(importer="p.c", imported="p.a")
    assert import_cycles(graph, "p") == [["p.a", "p.b", "p.c"]]
