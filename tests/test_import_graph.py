"""The layering rule, checked by walking every import with `ast` (function-level imports included).

Lower layers never import higher ones, and no two modules import each other, directly or in a
cycle. The layers are the map in docs/ARCHITECTURE.md; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nanodistill", "server", "tools", "resources")

# Lowest first. A module may import modules of its own layer or below.
LAYERS: list[tuple[str, ...]] = [
    (
        "nanodistill.errors",
        "nanodistill.settings",
        "nanodistill.reach",
        "nanodistill.platform",
        "nanodistill.data.rows",
    ),
    ("nanodistill.store",),
    ("nanodistill.data", "nanodistill.teacher", "nanodistill.gguf"),
    ("nanodistill.student",),
    ("nanodistill.jobs",),
    ("nanodistill.amplify", "nanodistill.train", "nanodistill.evaluate", "nanodistill.bases"),
    (
        "nanodistill.distill",
        "nanodistill.improve",
        "nanodistill.kinds",
        "nanodistill.worker",
        "nanodistill.api",
        "nanodistill.views",
    ),
    ("nanodistill.runtime", "nanodistill.testing", "nanodistill"),
    ("tools", "resources"),
    ("server",),
]
# Tool modules share only their plumbing; resources never import tools.
NO_IMPORTS_BETWEEN = {"tools": ("tools._common", "tools._request", "tools._roots"), "resources": ()}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md"
    return best


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports anywhere in it (a `from pkg import name` of a submodule counts)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def project_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def test_no_module_imports_a_higher_layer() -> None:
    graph = project_graph()
    wrong = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module) and not module.startswith(target + ".")
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_tools_and_resources_do_not_import_each_other() -> None:
    graph = project_graph()
    wrong = []
    for module, targets in graph.items():
        top = module.split(".")[0]
        if top not in NO_IMPORTS_BETWEEN:
            continue
        for target in targets:
            shared = target in NO_IMPORTS_BETWEEN[top] and top == "tools"
            if target.split(".")[0] in NO_IMPORTS_BETWEEN and not shared and target != top:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "views and plumbing belong in the engine:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = project_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if node.startswith(target + "."):
                continue  # a module importing its own package's __init__ is not a loop between modules
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import loops:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_sql_lives_in_the_store() -> None:
    """Explicit SQL (datasette's discipline) stays in nanodistill/store: nothing else calls execute or fetch."""
    wrong = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if module_name(path).startswith("nanodistill.store"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("execute", "fetchone", "fetchall", "executemany"):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not wrong, "SQL outside nanodistill/store:\n" + "\n".join(wrong)
