"""The package's folders show the stages of the flow, and imports only ever go upstream.

read + validate -> model -> compile -> engine -> decision -> render, then the tools built on them.
A module may import its own subpackage and any stage listed before its own; an import the other
way is a cycle waiting to happen, and this test names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "evaluator"

# Upstream first. Top-level modules are stages of their own.
STAGES = (
    "errors",
    "read",
    "vocab",
    "case",
    "language",
    "compile",
    "engine",
    "decide",
    "api",
    "render",
    "batch",
    "authoring",
    "audit",
    "fhir",
    "service",
    "cli",
    "__main__",
)


def _stage(module: str) -> str:
    """`evaluator.compile.lowering` -> `compile`; `evaluator.api` -> `api`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported evaluator module) for every import in `path`, names included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("evaluator")]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; write it absolute"
            module = node.module or ""
            if module == "evaluator":
                found += [(node.lineno, f"evaluator.{a.name}") for a in node.names]
            elif module.startswith("evaluator."):
                found.append((node.lineno, module))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_folder_is_a_known_stage() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name[0] not in "_."}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules <= set(STAGES), sorted((folders | modules) - set(STAGES))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_upstream_only(path: Path) -> None:
    here = _stage("evaluator." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    if here in ("", "__init__"):
        return
    rank = STAGES.index(here)
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module} ({_stage(module)} is downstream)"
        for line, module in _imports(path)
        if _stage(module) and STAGES.index(_stage(module)) > rank
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "folder",
    sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()),
    ids=lambda p: p.name,
)
def test_every_subpackage_says_what_it_holds(folder: Path) -> None:
    tree = ast.parse((folder / "__init__.py").read_text())
    assert ast.get_docstring(tree), f"{folder.name}/__init__.py needs a docstring"


def test_the_stage_check_catches_an_upstream_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from evaluator.render import decision\n")
    assert STAGES.index(_stage(_imports(bad)[0][1])) > STAGES.index("engine")
