"""The protocol core does no I/O: it imports nothing that could, and reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import ecrlink.protocol

CORE = Path(ecrlink.protocol.__file__).parent
ALLOWED_STDLIB = {
    "__future__", "collections", "dataclasses", "datetime", "enum", "json", "re", "typing",
    "unicodedata", "urllib",
}
ALLOWED_RELATIVE = {"_exceptions"}  # the only module above the core it may use


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_core_imports_only_pure_modules() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for level, module in _imports(path):
            top = module.split(".")[0]
            if level == 0:
                assert top in ALLOWED_STDLIB, f"{path.name} imports {module}"
            elif level == 2:
                assert top in ALLOWED_RELATIVE, f"{path.name} imports ..{module}"
            else:
                assert level == 1, f"{path.name}: relative import level {level}"


def test_core_reads_no_clock() -> None:
    for path in sorted(CORE.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for banned in (".now(", ".today(", "utcnow", "time.time", "monotonic"):
            assert banned not in source, f"{path.name} uses {banned}"


def test_the_exception_tree_imports_nothing() -> None:
    path = CORE.parent / "_exceptions.py"
    assert [m for _, m in _imports(path)] == ["__future__"]
