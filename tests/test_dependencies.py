"""pyproject.toml declares exactly what the code imports: no undeclared import, no unused dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# Declared but not imported, on purpose (name -> why); empty now.
KEPT_UNIMPORTED: dict[str, str] = {}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {canonical(re.match(r"[A-Za-z0-9_.-]+", r).group(0)) for r in reqs}  # noqa: E731
    optional = set().union(*(names(v) for v in project["optional-dependencies"].values()))
    return names(project["dependencies"]), optional


def imported_modules() -> set[str]:
    modules = set()
    for path in [*(ROOT / "subnet").rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "neurons").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}  # scripts import their siblings
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("subnet", "tests", *scripts)}


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """module -> the installed distributions providing it (tomli is only installed on Python < 3.11)."""
    providers = importlib.metadata.packages_distributions()
    return {m: {canonical(d) for d in providers.get(m, [m])} for m in modules}


def test_every_import_is_declared():
    runtime, optional = declared()
    undeclared = {m: d for m, d in distributions_of(imported_modules()).items() if not d & (runtime | optional)}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_runtime_dependency_is_imported():
    runtime, _ = declared()
    used = set().union(*distributions_of(imported_modules()).values())
    unused = runtime - used - set(KEPT_UNIMPORTED)
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
