"""The package's shape, checked from its source: the seams that keep one feature in one place.

* no import cycles (imports inside functions count; ``TYPE_CHECKING`` blocks do not);
* ``sandbox/`` depends on the VMM interface only (``hypervisor.base`` and
  ``hypervisor.open_vmm``), never on a driver such as ``hypervisor.qemu``;
* the front doors (``runtime/``, ``shim/``) never read the VMM's configuration
  and never plan a container themselves (VM sizing, guest spec, shares are the
  sandbox's);
* guest-side code imports the standard library and other guest-side code only;
* no module grows past the size where it wants splitting.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "strongbox"
GUEST_SIDE = ("strongbox.agent", "strongbox.container", "strongbox.protocol", "strongbox.oci")
GUEST_MODULES = {"strongbox", "strongbox.errors", "strongbox.status"}
#: Generated code (protoc) is exempt from the size rule.
GENERATED = ("_pb2.py",)
MAX_LINES = 420


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        self.found.add(module)
        self.found.update(f"{module}.{alias.name}" for alias in node.names)


@cache
def _imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports (run-time imports, anywhere in the file)."""
    path = _modules()[module]
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text()))
    return frozenset(visitor.found)


def _internal_imports(module: str) -> set[str]:
    return {m for m in _imports(module) if m in _modules() and m != module}


def test_no_import_cycles() -> None:
    graph = {m: _internal_imports(m) for m in _modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def _under(prefix: str) -> list[str]:
    return sorted(m for m in _modules() if m == prefix or m.startswith(prefix + "."))


def test_sandbox_depends_on_the_vmm_interface_only() -> None:
    allowed = {"strongbox.hypervisor", "strongbox.hypervisor.base"}
    for module in _under("strongbox.sandbox"):
        used = {m for m in _imports(module) if m.startswith("strongbox.hypervisor")}
        used -= {f"strongbox.hypervisor.{n}" for n in ("open_vmm", "remove_leftovers",
                                                         "idle_jails", "vmm_processes",
                                                         "orphan_vmms")}
        used = {m for m in used if not m.startswith("strongbox.hypervisor.base.")}
        assert used <= allowed, (module, sorted(used - allowed))


@pytest.mark.parametrize("door", ["strongbox.runtime", "strongbox.shim", "strongbox.sdk",
                                  "strongbox.aio"])
def test_front_doors_hold_only_their_protocol(door: str) -> None:
    planning = ("strongbox.oci.sizing", "strongbox.sandbox.guestspec", "strongbox.sandbox.shares",
                "strongbox.sandbox.boot", "strongbox.sandbox.vm", "strongbox.hypervisor")
    for module in _under(door):
        text = _modules()[module].read_text()
        assert "hypervisor.qemu" not in text, f"{module} reads the VMM's configuration"
        for name in ("vm_size(", "guest_spec(", "bind_shares(", "vm_size_for("):
            assert name not in text, f"{module} calls {name[:-1]}: that is the sandbox's"
        bad = [m for m in _imports(module) if m.startswith(planning)]
        assert not bad, (module, bad)


def test_guest_side_code_imports_the_standard_library_and_guest_code_only() -> None:
    stdlib = set(sys.stdlib_module_names) | {"_signal", "__future__"}
    for prefix in GUEST_SIDE:
        for module in _under(prefix):
            for name in _imports(module):
                top = name.split(".")[0]
                if top == "strongbox":
                    if name not in _modules():
                        continue  # "from strongbox.x import name": the module is listed too
                    assert name.startswith(GUEST_SIDE) or name in GUEST_MODULES, (module, name)
                else:
                    assert top in stdlib, (module, name)


def test_no_module_past_the_size_that_wants_splitting() -> None:
    big = {m: n for m, p in _modules().items() if not p.name.endswith(GENERATED)
           and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big
