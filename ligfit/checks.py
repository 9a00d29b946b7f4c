"""Checks of user-given values (numbers, residue names) that every command and API function shares.

Each raises a one-line :class:`BadOptionError` naming the value and what is allowed.
"""

from __future__ import annotations

import math
import numbers

from ligfit.errors import BadOptionError

#: Resolutions ligfit accepts (Å): finer than 0.5 Å is not a cryo-EM/crystallographic map in Å, and
#: coarser than 20 Å holds no detail a ligand could be placed by.
FINEST_RESOLUTION, COARSEST_RESOLUTION = 0.5, 20.0


def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    integer: bool = False,
    unit: str = "",
) -> float | int:
    """``value`` as a float (or int with ``integer``) if it is a finite number in range; else a BadOptionError."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value, numbers.Integral)):
        raise BadOptionError(f"{name} must be {kind}{' of ' + unit if unit else ''}, got {value!r} ({type(value).__name__})")
    number = int(value) if integer else float(value)
    if not math.isfinite(number):
        raise BadOptionError(f"{name} must be a finite number, got {value!r}")
    suffix = f" {unit}" if unit else ""
    if minimum is not None and (number <= minimum if exclusive_minimum else number < minimum):
        bound = f"greater than {minimum:g}" if exclusive_minimum else f"at least {minimum:g}"
        raise BadOptionError(f"{name} must be {bound}{suffix}, got {value!r}")
    if maximum is not None and number > maximum:
        raise BadOptionError(f"{name} must be at most {maximum:g}{suffix}, got {value!r}")
    return number


def check_resolution(value: object, name: str = "resolution") -> float:
    """A map resolution in Å: finite, positive, neither absurdly fine nor too coarse to place a ligand."""
    resolution = check_number(value, name, minimum=0.0, exclusive_minimum=True, unit="Å")
    if resolution < FINEST_RESOLUTION:
        raise BadOptionError(f"{name} {resolution:g} Å is finer than {FINEST_RESOLUTION} Å: give the map's resolution in Å (e.g. 3.2)")
    if resolution > COARSEST_RESOLUTION:
        raise BadOptionError(
            f"{name} {resolution:g} Å is too coarse: a map coarser than {COARSEST_RESOLUTION:g} Å shows no ligand-sized detail "
            "(check the value; ligfit is meant for maps of about 2–8 Å)"
        )
    return resolution


def check_residue_name(value: object, name: str = "ligand name") -> str:
    """A ligand residue name that PDB and mmCIF files both keep: 1–3 letters or digits."""
    if not isinstance(value, str) or not (1 <= len(value) <= 3) or not value.isascii() or not value.isalnum():
        raise BadOptionError(f"{name} must be 1–3 letters or digits (PDB files keep no more), got {value!r}; e.g. LIG")
    return value.upper()
