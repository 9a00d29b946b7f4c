"""The package's floors (ARCHITECTURE.md): stages never import each other, nothing imports upward, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ligfit"

#: Each top-level unit of the package and its floor; a unit may import only units on lower floors
#: (stages: only the shared floor). trace and backbone are one stage (the de novo model).
FLOORS = {
    "errors": 0,
    "checks": 1,
    "io": 1,
    "maps": 2,
    "ligand": 2,
    "runtime": 1,
    "records": 1,
    "measures": 3,
    "pictures": 3,
    "viewers": 2,
    "progress": 1,
    "segment": 4,
    "dock": 4,
    "refine": 4,
    "templates": 4,
    "trace": 4,
    "backbone": 4,
    "evaluate": 4,
    "predicted": 4,
    "report_html": 5,
    "report": 5,
    "pipeline": 6,
    "screen": 6,
    "api": 7,
    "cli": 8,
    "__init__": 9,
}
SAME_STAGE = {frozenset({"trace", "backbone"})}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ligfit":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, str]]:
    """(importing file, importing unit, imported module) for every import of ligfit or benchmarks, lazy ones too."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        unit = _unit(module.removesuffix(".__init__")) if module != "ligfit.__init__" else "__init__"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] if node.module or node.level == 0 else [f"{target}.{a.name}" for a in node.names]
                if target == "ligfit":
                    targets = [f"ligfit.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found += [(str(relative), unit, t) for t in targets if t.split(".")[0] in ("ligfit", "benchmarks")]
    return found


def test_every_unit_has_a_floor():
    units = {_unit(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.glob("*")}
    units = {u.removesuffix(".__init__") for u in units if u and not u.startswith("__pycache__")} - {"shipped_templates"}
    assert units <= set(FLOORS), f"add {sorted(units - set(FLOORS))} to FLOORS (and to ARCHITECTURE.md)"


def test_nothing_in_the_package_imports_benchmarks():
    assert not [f"{file} imports {target}" for file, _, target in _imports() if target.startswith("benchmarks")]


@pytest.mark.parametrize("rule", ["down only", "stages side by side"])
def test_imports_point_down_and_stages_stand_side_by_side(rule):
    wrong = []
    for file, unit, target in _imports():
        other = _unit(target)
        if other is None or other == unit or unit not in FLOORS or other not in FLOORS:
            continue
        if rule == "down only" and FLOORS[other] > FLOORS[unit]:
            wrong.append(f"{file} imports {target} from a higher floor")
        if rule == "stages side by side" and FLOORS[unit] == FLOORS[other] == 4 and frozenset({unit, other}) not in SAME_STAGE:
            wrong.append(f"{file} (stage {unit}) imports stage {other}")
    assert not wrong, "\n".join(wrong)


def test_no_cycles_between_units():
    edges: dict[str, set[str]] = {}
    for _, unit, target in _imports():
        other = _unit(target)
        if other and other != unit:
            edges.setdefault(unit, set()).add(other)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(f"{a} ↔ {b}" for a in edges for b in edges[a] if reaches(b, a, {b}))
    assert not cycles, cycles
