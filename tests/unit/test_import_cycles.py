"""No import cycles in app/: each module's top-level imports (those run when it is first
imported; imports inside functions and under TYPE_CHECKING are not) form a graph without
a cycle, so any module can be imported first, alone (checked statically, with the cycle's
path on failure, and, in the slow lane, by importing each module alone in a fresh process)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

APP = ROOT / "app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(APP.rglob("*.py"))}


def _top_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The app modules ``path`` imports when it is imported (not inside functions, not
    under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in known)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    if child in known:
                        found.add(child)  # from package import module
                    elif base in known:
                        found.add(base)

    visit(tree.body)
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_app_modules_import_one_another_without_a_cycle() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _top_level_imports(path, name, known) for name, path in modules.items()}
    # A package's __init__ may gather its own modules (app/__init__ registers blueprints):
    # Python handles a module importing its own parent while the parent runs.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (d != "app" and name.startswith(d + "."))}
        graph[name].discard("app")
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


#: Run in one interpreter that has imported the third-party packages only; each app module
#: is then imported first and alone in a fork of it (cheap: the project's code only).
ISOLATED_IMPORTS = """
import importlib, os, sys, traceback
for name in ("flask", "sqlalchemy", "celery", "pydantic", "pydantic_settings", "numpy",
             "pymilvus", "redis", "kombu", "werkzeug", "click", "prometheus_client", "lxml"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
pending, running, failed = list(sys.argv[1:]), {}, []
while pending or running:
    while pending and len(running) < (os.cpu_count() or 1):
        module = pending.pop()
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(module)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        running[pid] = module
    pid, status = os.wait()
    if status:
        failed.append(running[pid])
    del running[pid]
print("failed:", " ".join(sorted(failed)))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow  # about a minute: every module of app/, each in a fresh process
def test_every_module_imports_first_and_alone() -> None:
    modules = sorted(m for m in _modules() if not m.endswith("__main__"))
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-500:] + done.stderr[-4000:]
