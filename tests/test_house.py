"""The shape of the code base: no import circles between modules or between folders, no import
pointing up a floor, no overlong functions, the package data a wheel install needs.  Fast: nothing
here imports torch or trains."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vsb2net"
#: the longest a function in src/vsb2net may be (lines from ``def`` to its last line)
MAX_FUNCTION_LINES = 80
#: the README is a first read; what contributors need is in CONTRIBUTING.md
MAX_README_LINES = 200
#: the floors of the package, from the ground up: a top-level module or folder (``vsb2net``: the
#: package's own __init__) imports only from its floor or below, never from above (deferred imports
#: inside functions count too).  A new top-level module or folder takes its place here.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("vsb2net", "errors", "io", "registry", "codes", "config", "space", "hamming_kernel", "served_order", "threads",
     "checkpoint", "distributed"),
    ("models",),
    ("data",),
    ("evaluation",),
    ("training", "run"),
    ("pipeline",),
    ("index", "comparison"),
    ("serve", "report"),
    ("cli", "__main__"),
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``module`` imports anywhere in its file (deferred imports count too)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join((package[:len(package) - node.level + 1] if node.level else [])
                            + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of ``graph``'s nodes that reach one another (Tarjan's strongly connected
    components of more than one node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def import_cycles() -> list[list[str]]:
    """Groups of the package's modules that import one another, directly or through others."""
    return _cycles(_module_graph())


def _unit(module: str) -> str:
    """The top-level module or folder of the package that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def folder_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> the module imports behind it, between different units."""
    edges: dict[tuple[str, str], list[str]] = {}
    for m, targets in _module_graph().items():
        for t in sorted(targets):
            if _unit(m) != _unit(t):
                edges.setdefault((_unit(m), _unit(t)), []).append(f"{m} -> {t}")
    return edges


def folder_cycles() -> list[list[str]]:
    """Groups of top-level modules and folders that import one another (through any of their modules)."""
    graph: dict[str, set[str]] = {}
    for a, b in folder_edges():
        graph.setdefault(a, set()).add(b)
    return _cycles(graph)


def floor_of(unit: str) -> int | None:
    return next((i for i, units in enumerate(FLOORS) if unit in units), None)


def arrows_up() -> list[str]:
    """Module imports whose target sits on a higher floor than the importer."""
    up = []
    for (a, b), imports in sorted(folder_edges().items()):
        fa, fb = floor_of(a), floor_of(b)
        if fa is not None and fb is not None and fb > fa:
            up += [f"{i} (floor {fa} imports floor {fb})" for i in imports]
    return up


def test_no_module_imports_one_that_imports_it_back():
    assert import_cycles() == []


def test_the_cycle_check_finds_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "vsb2net"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert import_cycles() == [["vsb2net.a", "vsb2net.sub.b"]]


def test_every_top_level_module_and_folder_has_a_floor():
    units = {_unit(m) for m in _modules()}
    assert sorted(u for u in units if floor_of(u) is None) == []
    assert sorted(u for floor in FLOORS for u in floor if u not in units) == []  # no stale name


def test_no_loop_between_folders():
    assert folder_cycles() == []


def test_no_import_points_up_a_floor():
    assert arrows_up() == []


def test_the_folder_checks_find_a_loop_and_an_arrow_up(tmp_path, monkeypatch):
    pkg = tmp_path / "vsb2net"
    for folder in ("models", "data"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    # no module circle: models.a -> data.b -> models.c, but the folders import each other
    (pkg / "models" / "a.py").write_text("from ..data import b\n")
    (pkg / "data" / "b.py").write_text("def f():\n    from ..models import c\n")
    (pkg / "models" / "c.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert import_cycles() == []
    assert folder_cycles() == [["data", "models"]]
    assert arrows_up() == ["vsb2net.models.a -> vsb2net.data.b (floor 1 imports floor 2)"]


def test_the_readme_is_a_first_read_and_the_guide_names_its_tests():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= MAX_README_LINES and "(CONTRIBUTING.md)" in readme
    guide = (ROOT / "CONTRIBUTING.md").read_text()
    sections = re.split(r"^## ", guide, flags=re.M)[1:]
    adding = {s.splitlines()[0]: s for s in sections if s.startswith("Adding a")}
    assert set(adding) == {"Adding a method", "Adding a dataset", "Adding an index backend", "Adding a metric"}
    for title, text in adding.items():
        tests = re.findall(r"`(tests/test_\w+\.py)`", text)
        assert tests and all((ROOT / t).is_file() for t in tests), title


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_a_wheel_carries_the_tuned_defaults_and_other_package_data(tmp_path):
    from vsb2net.comparison.tuned import TUNED_DIR

    assert TUNED_DIR.is_relative_to(PACKAGE) and sorted(TUNED_DIR.glob("*.yaml"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-300:]}")
    (wheel,) = tmp_path.glob("vsb2net-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in TUNED_DIR.glob("*.yaml"):
        assert f"vsb2net/comparison/tuned/{path.name}" in names
    assert "vsb2net/serve/page.html" in names and "vsb2net/comparison/reference.json" in names
    assert any(n.startswith("vsb2net/data/class_knowledge/") for n in names)
