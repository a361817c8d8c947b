"""The layout rules of docs/ARCHITECTURE.md, read from the code itself.

Every import counts, at the top of a module or inside a function; only those under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "acc_buildpass"
DAGS = ROOT / "dags"
MAX_FUNCTION_LINES = 60

# Who may import what, by the first part of the module's path inside the package. A layer not
# listed may import nothing of the package but what is named here for everyone.
EVERYONE = {"errors", "models", "settings", "__init__"}
MAY_IMPORT = {
    "__init__": set(),
    "settings": set(),
    "errors": set(),
    "models": {"errors"},
    "clients": EVERYONE | {"clients"},
    "config": EVERYONE | {"clients"},  # the retry policy's settings live in the Variable
    "mapping": EVERYONE,
    "storage": EVERYONE,
    "pipeline": EVERYONE | {"clients", "config", "mapping", "storage", "pipeline"},
    "hooks": EVERYONE | {"clients", "config", "storage", "hooks"},
    "provider": EVERYONE | {"hooks"},
    "runtime": EVERYONE | {"clients", "config", "storage", "hooks", "pipeline"},
    "dag_tasks": EVERYONE | {"clients", "config", "storage", "pipeline", "runtime", "cli"},
    "cli": EVERYONE | {"clients", "config", "storage", "pipeline", "runtime", "cli"},
    "ui": EVERYONE | {"config", "storage", "runtime", "cli", "ui"},
}
AIRFLOW_ONLY_IN = {"hooks", "ui", "runtime", "dag_tasks"}
BOTO_ONLY_IN = {"storage", "hooks/staging"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(("acc_buildpass", *parts)), path


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path, module: str) -> set[str]:
    """Every module the file imports when it runs (absolute names; ``from x import y`` gives
    ``x.y`` too, as y may be a module)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level if path.name != "__init__.py" else None]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    known = dict(modules())
    return {name: {m for m in imports(path, name) if m in known and m != name} for name, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else "__init__"


def test_no_import_cycle() -> None:
    edges = graph()
    # Packages import nothing here but their own modules: a package's __init__ is its modules' parent.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_each_layer_imports_only_what_it_may(module: str, path: Path) -> None:
    own = layer(module)
    allowed = MAY_IMPORT[own] | {own}
    known = dict(modules())
    ours = {m for m in imports(path, module) if m in known and m != module}  # x.y of `from x import y`: y a module
    wrong = sorted(m for m in ours if layer(m) not in allowed)
    assert not wrong, f"{module} ({own}) may import only {sorted(allowed)}, imports {wrong}"


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_airflow_and_boto3_only_where_the_architecture_says(module: str, path: Path) -> None:
    where = "/".join(path.relative_to(PACKAGE).with_suffix("").parts)
    found = imports(path, module)
    airflow = sorted(m for m in found if m == "airflow" or m.startswith("airflow."))
    boto = sorted(m for m in found if m.split(".")[0] in ("boto3", "botocore", "s3transfer"))
    if layer(module) not in AIRFLOW_ONLY_IN:
        assert not airflow, f"{module} imports Airflow: {airflow}"
    if where not in BOTO_ONLY_IN:
        assert not boto, f"{module} imports boto3/botocore: {boto}"


def functions(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node.end_lineno - start + 1  # type: ignore[operator]


def test_no_function_longer_than_a_screen() -> None:
    long = [
        f"{where} ({lines} lines)"
        for path in [*sorted(PACKAGE.rglob("*.py")), *sorted(DAGS.glob("*.py"))]
        for where, lines in functions(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(long)


def test_the_rules_see_what_they_check(tmp_path: Path) -> None:
    """The checker itself: it finds imports inside functions and skips TYPE_CHECKING ones."""
    edges = graph()
    assert "acc_buildpass.errors" in edges["acc_buildpass.models"]
    assert len(edges) > 20
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import airflow\ndef f():\n    import boto3\n"
    sample = tmp_path / "sample.py"
    sample.write_text(source)
    assert imports(sample, "acc_buildpass.sample") == {"typing", "typing.TYPE_CHECKING", "boto3"}
