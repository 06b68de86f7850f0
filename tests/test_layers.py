"""The README's layout is a layering: each module of search/ imports only modules of its own
layer or of the layers before it ("imports point down this list"). This test reads every
module's imports (ast: top-level and lazy ones inside functions alike) and holds the code to it.

A package (storage/, reporting/) counts as one module; its imports of itself are free.
"""

from __future__ import annotations

import ast
from pathlib import Path

SEARCH = Path(__file__).resolve().parent.parent / "search"

# The README's layout, bottom first; a module may import from its own layer and those before.
LAYERS: list[list[str]] = [
    # the foundations: errors, the study TOML, the search space, the metric, the data, the model
    [
        "errors",
        "events",
        "config_space",
        "config",
        "space",
        "metrics",
        "data",
        "sources",
        "datasets",
        "layers",
        "model",
    ],
    # one trial
    ["outcomes", "constraints", "training", "objective"],
    # persistence
    ["storage", "_optuna", "studies", "first_trials", "artifacts", "proxy"],
    # the run: the search loop, processes, devices, the bar
    [
        "tpe_window",
        "late_rung",
        "runner",
        "planning",
        "local",
        "pool",
        "workers",
        "restarts",
        "signals",
        "cpus",
        "devices",
        "_tf",
        "progress",
    ],
    # reading back
    ["inspection", "card", "exporting", "reseed", "predict", "reporting", "dashboard"],
    # the Python API: run and the read-back verbs, the one entry point of every run
    ["api"],
    # the commands, and the package's lazy front door (search.run, search.best ...)
    ["cli", "__init__"],
]

# Imports that break the layering today, each with why it is allowed for now.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _layer_of() -> dict[str, int]:
    return {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module: str) -> str:
    """search.storage._budget -> storage; search.api -> api; search -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, list[Path]]:
    """Each module (a package counts as one) of search/ and its files."""
    units: dict[str, list[Path]] = {}
    for path in sorted(SEARCH.rglob("*.py")):
        rel = path.relative_to(SEARCH)
        units.setdefault(rel.parts[0].removesuffix(".py"), []).append(path)
    return units


def _imports(path: Path, search: Path = SEARCH) -> set[str]:
    """The search modules a file imports, wherever in the file (functions included)."""
    package = list(path.relative_to(search.parent).parts[:-1])  # a package's __init__ too
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "search"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package up
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "search":
                continue
            if module == "search" or node.module is None:  # from search import api; from . import x
                found |= {f"{module}.{a.name}" for a in node.names}
            else:
                found.add(module)
    return found


def _edges() -> set[tuple[str, str]]:
    units = _modules()
    edges = set()
    for unit, paths in units.items():
        for path in paths:
            for module in _imports(path):
                target = _unit(module)
                if target != unit and target in units:  # not: search.__version__ and such
                    edges.add((unit, target))
    return edges


def test_every_search_module_has_a_layer():
    missing = sorted(set(_modules()) - set(_layer_of()))
    assert not missing, f"add these modules of search/ to a layer in LAYERS: {missing}"


def test_no_module_imports_a_module_of_a_higher_layer():
    layer = _layer_of()
    upward = sorted(
        f"{a} (layer {layer[a]}) imports {b} (layer {layer[b]})"
        for a, b in _edges()
        if a in layer and b in layer and layer[b] > layer[a] and (a, b) not in EXCEPTIONS
    )
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_layering_test_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function counts, and so does `from . import`."""
    package = tmp_path / "search" / "storage"
    package.mkdir(parents=True)
    (package / "_budget.py").write_text(
        "import search.errors\n"
        "from . import _retry\n"
        "from .. import config\n"
        "def f():\n"
        "    from search import api, outcomes as o\n"
        "    from search.reporting.plots import plot\n",
        encoding="utf-8",
    )
    assert _imports(package / "_budget.py", tmp_path / "search") == {
        "search.errors",
        "search.storage._retry",
        "search.config",
        "search.api",
        "search.outcomes",
        "search.reporting.plots",
    }
    assert ("cli", "api") in _edges()  # lazy: inside the commands
