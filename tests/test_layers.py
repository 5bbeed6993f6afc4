"""The package's layers hold ([tool.importlinter] in pyproject.toml, drawn in docs/ARCHITECTURE.md).

import-linter sees every import, also those inside functions, so a layer that reaches upward or two modules
that import each other fail here. Imports inside functions are kept for what is optional or heavy to load
(torch, napari, bioimage.io, dask.distributed, Captum, ...), for the CLI's lazy command loading and for a
package's lazy ``__getattr__``; a slicewise
module or the standard library is imported at the top of the module.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "slicewise"

#: light dependencies: imported at the top of a module, never inside a function
LIGHT = frozenset(sys.stdlib_module_names) | {"numpy", "pydantic", "yaml", "slicewise", "typing_extensions"}


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if Path(exe).is_file():
        return [exe]
    pytest.skip("import-linter is not installed: pip install 'slicewise[test]'")


def test_import_contracts_hold() -> None:
    done = subprocess.run([*_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, f"an import breaks the layers (docs/ARCHITECTURE.md):\n{done.stdout}{done.stderr}"


def _local_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name == "__getattr__":
            continue  # a package's module-level __getattr__ (PEP 562) is its lazy loader
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                found += [(node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_function_local_imports_are_for_heavy_dependencies_only() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO)
        in_cli = rel.parts[1] == "cli"
        for line, module in sorted(set(_local_imports(path))):
            top = module.split(".")[0]
            if module.startswith(".") or (top in LIGHT and not (in_cli and top == "slicewise")):
                bad.append(f"{rel}:{line}: import of {module} inside a function")
    assert not bad, "move these imports to the top of their module:\n" + "\n".join(bad)
