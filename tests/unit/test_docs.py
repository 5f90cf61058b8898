"""docs/architecture.md walks requests through the code: every name it cites must exist.

The walk of ``kill`` and of containerd's ``Exec`` names files and functions
("`runtime/container.py: Container.kill`", "`Sandbox.signal_process`"); when
code moves and the page does not, this test says which citation went stale.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
PACKAGE = TOP / "src" / "strongbox"
DOC = TOP / "docs" / "architecture.md"
TEXT = " ".join(DOC.read_text().split())
#: "`path/file.py: Name`" or "`path/file.py: Class.method`"
CITED_IN_FILE = sorted(set(re.findall(r"`([\w/]+\.py):\s*([\w.]+)`", TEXT)))
#: "`Class.method`" without a file
CITED_METHODS = sorted(set(re.findall(r"`([A-Z]\w+)\.(\w+)`", TEXT)))


def _self_attributes(method: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """``self.x`` assigned in a method (instance attributes)."""
    found = set()
    for node in ast.walk(method):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and target.value.id == "self":
                found.add(target.attr)
    return found


def _names(tree: ast.AST) -> dict[str, set[str]]:
    """Top-level names of a module ("" key) and the attributes of each of its classes."""
    found: dict[str, set[str]] = {"": set()}
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[""].add(node.name)
        elif isinstance(node, ast.Assign):
            found[""].update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[""].add(node.target.id)
        if isinstance(node, ast.ClassDef):
            attrs = found.setdefault(node.name, set())
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    attrs.add(item.name)
                    attrs.update(_self_attributes(item))
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    attrs.add(item.target.id)
    return found


@cache
def _module(path: str) -> dict[str, set[str]]:
    return _names(ast.parse((PACKAGE / path).read_text()))


@cache
def _classes() -> dict[str, set[str]]:
    classes: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for name, attrs in _names(ast.parse(path.read_text())).items():
            if name:
                classes.setdefault(name, set()).update(attrs)
    return classes


def test_the_page_cites_code() -> None:
    assert len(CITED_IN_FILE) > 20 and len(CITED_METHODS) > 10


@pytest.mark.parametrize(("path", "name"), CITED_IN_FILE)
def test_cited_file_defines_the_name(path: str, name: str) -> None:
    assert (PACKAGE / path).is_file(), f"{path} does not exist"
    names = _module(path)
    owner, _, attr = name.rpartition(".")
    if owner:
        assert attr in names.get(owner, set()), f"{path} has no {name}"
    else:
        assert name in names[""], f"{path} has no {name}"


@pytest.mark.parametrize(("cls", "attr"), CITED_METHODS)
def test_cited_method_exists(cls: str, attr: str) -> None:
    classes = _classes()
    assert cls in classes, f"no class {cls} in src/strongbox"
    assert attr in classes[cls], f"{cls} has no {attr}"
