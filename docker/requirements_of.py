"""Print the requirements of ``pyproject.toml``'s project with some extras, one per line, for a build stage.

The ``deps`` stage of the images installs these (constrained by the lock) *before* the project itself, so a change
to ``src/`` alone leaves that big layer cached. Extras that name the project (``xmodal[a,b]``) are expanded.

Usage: ``python requirements_of.py pyproject.toml all > requirements.txt``
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The project's dependencies plus those of ``extras``, self-references expanded, in order, once each."""
    name = project["name"].lower()
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements_of.py: pyproject.toml has no extra {extra!r} (it has {sorted(optional)})")
        seen.add(extra)
        for req in optional[extra]:
            match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*\[([^\]]*)\]\s*", req)
            if match and match.group(1).lower() == name:
                pending.extend(e.strip() for e in match.group(2).split(",") if e.strip())
            else:
                out.append(req)
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1], "rb") as fh:
        sys.stdout.write("\n".join(requirements(tomllib.load(fh)["project"], sys.argv[2:])) + "\n")
