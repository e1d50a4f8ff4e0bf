"""The ``pipeline`` modules a script imports, transitively, including imports inside functions.

Imports are read from the source (``ast``), not executed, so every import
statement counts wherever it sits: at the top, inside a function, or behind
``if TYPE_CHECKING`` (which is conservative: such a module is declared
although it is not loaded at run time). Importing ``a.b.c`` also runs
``a/__init__.py`` and ``a/b/__init__.py``, so those are part of the closure.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "pipeline"


def module_file(root: Path, dotted: str) -> Path | None:
    """The file that defines ``dotted`` under ``root``, or None when it is not a module there."""
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_names(path: Path, root: Path) -> set[str]:
    """Dotted module names an import in ``path`` may load (``from m import x`` yields ``m`` and ``m.x``)."""
    names: set[str] = set()
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_closure(script: Path, root: Path) -> set[Path]:
    """Every file under ``root/pipeline`` that running ``script`` may import, as paths relative to ``root``."""
    found: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imported_names(todo.pop(), root):
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                path = module_file(root, ".".join(parts[:depth]))
                if path is not None and path not in found:
                    found.add(path)
                    todo.append(path)
    return {path.relative_to(root) for path in found}
