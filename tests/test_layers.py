"""The shape of the runtime packages, read from the source (no vani module is imported, no Ray).

The import graph counts every import: inside functions and under ``TYPE_CHECKING`` too (the coupling is real
even when Python tolerates it), absolute ``vani.*`` imports and relative ones alike (not module names in strings:
``cluster/cli.py`` loads its subcommands with ``importlib``, from the top). On it: no import circle,
and no arrow running up the layers:

    cluster/config.py, cluster/logs.py   the ground: import nothing of vani
    cluster/run.py, cluster/cli.py       the top: nothing in the runtime packages imports them
    adapters/                            providers: never import actors/ or gateway/
    actors/                              sessions, conversation, control plane: never import gateway/

Plus the size limits: no runtime file over 350 lines, no class with more than 20 methods. And the wheel ships
``vani.*`` only: the browser client's files, never tests/ or load/.
"""

from __future__ import annotations

import ast
import gc
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "adapters", "client", "cluster", "gateway")  # installed as vani.<name>
GROUND = ("vani.cluster.config", "vani.cluster.logs")
TOP = ("vani.cluster.run", "vani.cluster.cli")
MAX_LINES = 350
MAX_METHODS = 20


@dataclass(frozen=True)
class Module:
    name: str  # dotted, as installed: vani.actors.control.registry
    path: Path
    tree: ast.Module
    lines: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["vani", *parts])


def runtime_modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            src = path.read_text(encoding="utf-8")
            name = _module_name(path)
            found[name] = Module(name, path, ast.parse(src, filename=str(path)), len(src.splitlines()))
    return found


def _imported_names(mod: Module) -> set[str]:
    """Every dotted name an import statement of ``mod`` may denote (``from a import b`` gives a and a.b)."""
    is_pkg = mod.path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(mod.tree):  # walks function bodies and `if TYPE_CHECKING:` blocks as well
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = mod.name.split(".") if is_pkg else mod.name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """module -> the runtime modules it imports (each import mapped to the longest module it names)."""
    graph: dict[str, set[str]] = {}
    for name, mod in modules.items():
        targets: set[str] = set()
        for imported in _imported_names(mod):
            parts = imported.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in modules:
                    if candidate != name:
                        targets.add(candidate)
                    break
        graph[name] = targets
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None (depth-first search, colouring)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (circle := visit(nxt)) is not None:
                return circle
        path.pop()
        state[node] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for start in sorted(graph):
        if start not in state and (circle := visit(start)) is not None:
            return circle
    return None


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad: list[str] = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            arrow = f"{src} -> {dst}"
            if src in GROUND:
                bad.append(f"{arrow}: the ground imports nothing of vani")
            elif _under(dst, *TOP) and src not in TOP:
                bad.append(f"{arrow}: only the top (cluster/run, cluster/cli) may import the top")
            elif _under(src, "vani.adapters") and _under(dst, "vani.actors", "vani.gateway"):
                bad.append(f"{arrow}: adapters never import actors or gateway")
            elif _under(src, "vani.actors") and _under(dst, "vani.gateway"):
                bad.append(f"{arrow}: actors never import gateway")
    return bad


# ---------------------------------------------------------------------------------------------- the tree


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    # Parsed on a fresh thread with the collector off: late in a full run, CPython 3.11's AST constructor
    # failed here with "SystemError: AST constructor recursion depth mismatch" (a finaliser or the main
    # thread's recursion counters, left by earlier tests, disturb its depth check; the sources parse fine).
    gc.collect()
    gc.disable()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(runtime_modules).result()
    finally:
        gc.enable()


def test_the_graph_sees_every_kind_of_import(modules: dict[str, Module]) -> None:
    # Guards the reader itself: a graph that silently missed edges would pass every rule below.
    graph = import_graph(modules)
    assert len(modules) > 100
    assert "vani.actors.control.placement" in graph["vani.actors.control.registry"]  # from pkg import module
    assert "vani.gateway.app" in graph["vani.cluster.run"]  # an import inside a function
    assert "vani.cluster.config" in graph["vani.gateway.app"]


def test_no_import_circle(modules: dict[str, Module]) -> None:
    circle = find_circle(import_graph(modules))
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_no_arrow_runs_up_the_layers(modules: dict[str, Module]) -> None:
    assert layer_violations(import_graph(modules)) == []


def test_no_runtime_file_over_the_limit(modules: dict[str, Module]) -> None:
    long = {str(m.path.relative_to(ROOT)): m.lines for m in modules.values() if m.lines > MAX_LINES}
    assert long == {}, f"files over {MAX_LINES} lines"


def test_no_class_over_the_limit(modules: dict[str, Module]) -> None:
    big: dict[str, int] = {}
    for mod in modules.values():
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef) for b in node.body)
                if methods > MAX_METHODS:
                    big[f"{mod.path.relative_to(ROOT)}::{node.name}"] = methods
    assert big == {}, f"classes with more than {MAX_METHODS} methods"


# ---------------------------------------------------------------------------------------------- the checker


def _parsed(name: str, source: str, path: str) -> Module:
    return Module(name, ROOT / path, ast.parse(source), len(source.splitlines()))


def test_checker_sees_lazy_type_checking_and_relative_imports() -> None:
    mods = {
        "vani.actors.a": _parsed(
            "vani.actors.a",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vani.actors.b import B\n",
            "actors/a.py",
        ),
        "vani.actors.b": _parsed("vani.actors.b", "def f():\n    from . import c\n", "actors/b.py"),
        "vani.actors.c": _parsed("vani.actors.c", "from .a import x\n", "actors/c.py"),
    }
    graph = import_graph(mods)
    assert graph == {
        "vani.actors.a": {"vani.actors.b"},
        "vani.actors.b": {"vani.actors.c"},
        "vani.actors.c": {"vani.actors.a"},
    }
    assert find_circle(graph) == ["vani.actors.a", "vani.actors.b", "vani.actors.c", "vani.actors.a"]


def test_checker_reports_arrows_up() -> None:
    graph = {
        "vani.cluster.config": {"vani.actors.clock"},
        "vani.actors.control.registry": {"vani.gateway.app", "vani.cluster.run"},
        "vani.adapters.factory": {"vani.actors.wire.protocol"},
        "vani.gateway.app": {"vani.cluster.cli"},
        "vani.cluster.run": {"vani.gateway.app", "vani.cluster.config"},
    }
    assert layer_violations(graph) == [
        "vani.actors.control.registry -> vani.cluster.run: only the top (cluster/run, cluster/cli) may import the top",
        "vani.actors.control.registry -> vani.gateway.app: actors never import gateway",
        "vani.adapters.factory -> vani.actors.wire.protocol: adapters never import actors or gateway",
        "vani.cluster.config -> vani.actors.clock: the ground imports nothing of vani",
        "vani.gateway.app -> vani.cluster.cli: only the top (cluster/run, cluster/cli) may import the top",
    ]


# ---------------------------------------------------------------------------------------------- the wheel


def test_wheel_ships_vani_only(tmp_path: Path) -> None:
    import setuptools

    # Built from a copy of what the wheel is made of: setuptools leaves build/ behind, and a stale build/lib
    # (say, holding a module since deleted) would ship too. pyproject.toml needs setuptools >= 77 (SPDX
    # license): the environment's one when it has it (fast, offline), else pip's isolated build.
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *PACKAGES):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    recent = int(setuptools.__version__.split(".")[0]) >= 77
    isolation = ["--no-build-isolation"] if recent else []
    pip = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out), *isolation]
    subprocess.run(pip, check=True, cwd=tmp_path, timeout=300)
    (wheel,) = out.glob("vani-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith("vani/") and not n.split("/")[0].endswith(".dist-info")]
    assert outside == []
    assert [n for n in names if "tests/" in n or "load/" in n] == []
    web = {n.removeprefix("vani/client/web/") for n in names if n.startswith("vani/client/web/")}
    web_dir = ROOT / "client" / "web"
    expected = {str(p.relative_to(web_dir)) for p in web_dir.rglob("*") if p.is_file()}
    assert expected and web == expected
    shipped = {n for n in names if n.endswith(".py")}
    runtime = {f"vani/{p.relative_to(ROOT)}" for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    assert shipped == runtime  # every runtime module, as vani.<package>..., and nothing else
