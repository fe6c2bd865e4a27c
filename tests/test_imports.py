"""No import circle: each module imports on its own, and no two modules import each other."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "advlit"


def module_imports() -> dict[str, set[str]]:
    """Advlit module -> the advlit modules it imports at module level (imports inside functions excluded)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advlit"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names if alias.name.startswith("advlit")}
        found[name] = deps
    return found


def test_no_module_level_import_circle():
    graph = module_imports()
    assert "advlit.study.surrogate" in graph and "advlit.data.datamodule" not in graph["advlit.study.surrogate"]
    for start in graph:
        stack, seen = [start], set()
        while stack:
            for dep in graph.get(stack.pop(), ()):
                assert dep != start, f"{start} imports itself through {dep}"
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)


@pytest.mark.parametrize("module", ["advlit.study.surrogate", "advlit.study.transfer", "advlit.bench_attacks"])
def test_a_module_imports_first_in_a_fresh_interpreter(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
