"""Print pip constraints that pin every dependency in pyproject.toml to its lower bound.

`make test-min` installs the project with these constraints, so the suite runs against the oldest
versions `pyproject.toml` claims to support and a lower bound can never silently lie. Only direct
dependencies are pinned (what they pull in resolves normally), like uv's `lowest-direct`.
Names passed with --skip are left out (torch: CPU machines install the one CPU build on disk).

    python scripts/min_constraints.py [--extra test] [--skip torch] [pyproject.toml]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def lower_bound_pins(requirements: list[str], skip: set[str]) -> list[str]:
    """`name==lower; marker` for each requirement; a requirement without a lower bound is an error."""
    pins = []
    for req in requirements:
        m = _REQUIREMENT.match(req)
        if not m:
            raise ValueError(f"cannot read requirement {req!r}")
        name, spec, marker = m.group(1), m.group(2), m.group(3) or ""
        if name.lower().replace("_", "-") in skip:
            continue
        lower = re.search(r">=\s*([^,\s]+)", spec)
        if lower is None:
            raise ValueError(f"{req!r} states no lower bound; pyproject.toml must say what is tested")
        pins.append(f"{name}=={lower.group(1)}{marker}")
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", nargs="?", default="pyproject.toml")
    parser.add_argument("--extra", action="append", default=[], help="optional-dependency group to pin too")
    parser.add_argument("--skip", action="append", default=[], help="distribution name to leave unpinned")
    args = parser.parse_args(argv)
    project = tomllib.loads(Path(args.pyproject).read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in args.extra:
        requirements += project.get("optional-dependencies", {})[extra]
    skip = {s.lower().replace("_", "-") for s in args.skip}
    sys.stdout.write("".join(f"{pin}\n" for pin in lower_bound_pins(requirements, skip)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
