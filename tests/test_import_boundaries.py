"""Package boundaries, read from the source with ``ast``: callers use a package's public
surface, the edge ships without the cloud, and no domain reads another domain's tables."""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SOURCES = (ROOT / "src", ROOT / "benchmarks")
#: Packages whose ``__init__`` names (``__all__``) what code outside them may import; their
#: modules are internal to them. Add a package here once its callers use its surface.
SURFACES = ("drivetrain.edge", "drivetrain.core.can")
#: What the vehicle's software may import from Drivetrain (it ships to cars).
EDGE_MAY_IMPORT = ("drivetrain.core", "drivetrain.edge")


@dataclass(frozen=True)
class Import:
    """One ``import``/``from ... import`` statement (also inside functions)."""

    where: str  # file:line
    importer: str  # the importing module, e.g. drivetrain.sim.fleet.runner
    module: str  # the imported module
    names: tuple[str, ...]  # for ``from ... import``; empty for ``import module``


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    importer = module_name(path, root)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(a.name for a in node.names)
            yield Import(f"{shown}:{node.lineno}", importer, node.module, names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(f"{shown}:{node.lineno}", importer, alias.name, ())


def is_module(name: str) -> bool:
    path = ROOT / "src" / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache
def all_imports() -> list[Import]:
    return [
        i for root in SOURCES for path in sorted(root.rglob("*.py")) for i in imports_of(path, root)
    ]


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def surface_violations(imports: list[Import], public: Mapping[str, set[str]]) -> list[str]:
    """Imports that reach past a package's surface (or into it from inside it)."""
    problems = []
    for imp in imports:
        for package, names in public.items():
            if not inside(imp.module, package):
                continue
            if inside(imp.importer, package):
                # A name from its own package's surface: that surface imports this module first,
                # so the name may not exist yet (a cycle). Its submodules are fine.
                own = [n for n in imp.names if not is_module(f"{package}.{n}")]
                if imp.module == package and own:
                    problems.append(
                        f"{imp.where}: {imp.importer} imports its own package {package}"
                    )
                continue
            if imp.module != package:
                problems.append(f"{imp.where}: imports {imp.module}; import from {package}")
                continue
            hidden = [n for n in imp.names if n not in names]
            if hidden:
                problems.append(f"{imp.where}: {', '.join(hidden)} not in {package}.__all__")
    return problems


def public_names() -> dict[str, set[str]]:
    return {package: set(importlib.import_module(package).__all__) for package in SURFACES}


def test_code_outside_a_package_imports_only_its_public_surface() -> None:
    assert surface_violations(all_imports(), public_names()) == []


@pytest.mark.parametrize("package", SURFACES)
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_the_surface_check_flags_a_private_import_and_a_hidden_name() -> None:
    imports = [
        Import(
            "x.py:1", "drivetrain.sim.fleet.runner", "drivetrain.edge.buffer", ("SqliteBuffer",)
        ),
        Import("x.py:2", "drivetrain.commands.edge", "drivetrain.edge", ("EdgeAgent", "_secret")),
        Import("x.py:3", "drivetrain.edge.agent", "drivetrain.edge", ("EdgeAgent",)),
        Import("x.py:4", "drivetrain.edge.agent", "drivetrain.edge.buffer", ("Buffer",)),  # fine
    ]
    assert surface_violations(imports, {"drivetrain.edge": {"EdgeAgent", "SqliteBuffer"}}) == [
        "x.py:1: imports drivetrain.edge.buffer; import from drivetrain.edge",
        "x.py:2: _secret not in drivetrain.edge.__all__",
        "x.py:3: drivetrain.edge.agent imports its own package drivetrain.edge",
    ]


def test_the_edge_imports_nothing_but_core_and_itself() -> None:
    offending = [
        f"{i.where}: {i.module}"
        for i in all_imports()
        if inside(i.importer, "drivetrain.edge")
        and inside(i.module, "drivetrain")
        and not any(inside(i.module, allowed) for allowed in EDGE_MAY_IMPORT)
    ]
    assert offending == []


def test_no_domain_imports_another_domains_tables() -> None:
    offending = []
    for i in all_imports():
        if not (inside(i.importer, "drivetrain.cloud") and i.module.endswith(".models")):
            continue
        own, theirs = i.importer.split(".")[2], i.module.split(".")[2]
        tables = [n for n in i.names if n.endswith("Row")]
        if own != theirs and tables:
            offending.append(f"{i.where}: {', '.join(tables)} of {i.module}")
    assert offending == []


#: What `drivetrain ...` must not import before a command runs: every invocation (the docs'
#: examples run hundreds) would pay seconds of CPU for the cloud, the database and CAN stacks.
CLI_STARTUP_MUST_NOT_IMPORT = ("drivetrain.cloud", "drivetrain.sim", "drivetrain.edge",
                               "drivetrain.core.can", "sqlalchemy", "cantools", "pandas",
                               "pyarrow", "duckdb", "fastapi")


def test_the_command_line_starts_without_the_cloud_database_or_can_stacks() -> None:
    import subprocess
    import sys

    probe = ("import sys, drivetrain.cli; print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split()
    heavy = sorted({name for name in loaded for prefix in CLI_STARTUP_MUST_NOT_IMPORT
                    if name == prefix or name.startswith(prefix + ".")})
    assert heavy == [], "import these inside the commands that need them: " + ", ".join(heavy)
