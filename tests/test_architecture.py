"""The core stays GUI-free: importing any core module never pulls in Qt, napari or magicgui."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import napari_channelbias

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(napari_channelbias.__path__, "napari_channelbias."):
        if "._qt" in info.name or info.name.endswith(("._qt", ".__main__")):
            continue
        names.append(info.name)
    return names


def test_there_are_core_modules():
    assert "napari_channelbias.errors" in core_modules()


def test_core_never_imports_gui_toolkits():
    mods = core_modules()
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {GUI_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core modules imported GUI toolkits: {out.stdout.strip()}"


# --- the import graph ------------------------------------------------------------------------------
PACKAGE_DIR = Path(napari_channelbias.__file__).resolve().parent
ROOT_MODULE_LIMIT = 10


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def _imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module that ``path`` imports, at the top or inside functions (ast, not execution)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import bridge`
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _all_modules()
    known = set(modules)
    return {name: _imports_of(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # cli.main imports the training module only inside its command function (fast --help)
    assert "napari_channelbias.segmentation.training" in graph["napari_channelbias.cli.main"]


def test_no_import_cycles_among_the_package_modules():
    assert _cycles(import_graph()) == []


def test_at_most_ten_modules_at_the_package_root():
    root = sorted(p.name for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= ROOT_MODULE_LIMIT, root


def test_every_module_has_its_line_in_the_architecture_guide():
    # The guide is how a newcomer finds a module: one row per module under its subpackage's heading.
    guide = (PACKAGE_DIR.parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    sections = {}
    for block in guide.split("\n### ")[1:]:
        heading, _, body = block.partition("\n")
        sections[heading.strip()] = body.split("\n### ")[0]
    missing = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        sub = path.parent.relative_to(PACKAGE_DIR).as_posix()
        heading = "the package root" if sub == "." else f"`{sub}/`"
        if f"| `{path.name}` |" not in sections.get(heading, ""):
            missing.append(f"{sub}/{path.name}")
    assert not missing, f"modules without a row in docs/ARCHITECTURE.md: {missing}"
