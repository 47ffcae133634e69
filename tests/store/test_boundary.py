"""SQL lives in pipeline/store, and the store deals in bytes, not tensors."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|TRUNCATE|COPY)\b")
EXECUTING = {"execute", "executemany", "copy"}


def _text(node: ast.expr) -> str:
    """The literal text of a string argument (f-strings and + joins included), else ''."""
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _sql_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in EXECUTING
        and node.args
        and SQL.search(_text(node.args[0]))
    ]


def test_no_sql_is_executed_outside_the_store() -> None:
    store = ROOT / "pipeline" / "store"
    files = [
        f
        for folder in ("pipeline", "assets", "resources")
        for f in sorted((ROOT / folder).rglob("*.py"))
        if store not in f.parents
    ]
    assert files
    found = [call for f in files for call in _sql_calls(f)]
    assert not found, f"SQL executed outside pipeline/store: {found}"


def test_the_store_never_imports_torch() -> None:
    modules = sorted(p.stem for p in (ROOT / "pipeline" / "store").glob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('pipeline.store.' + name)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
