"""Rebuild the shipped template library (this folder) from the protein–ligand systems in openmmforcefields.

Source: ``openmmforcefields/data/perses_jacs_systems`` in the openmmforcefields package on PyPI
(MIT): eight targets of the JACS 2015 free-energy benchmark (Wang et al., J. Am. Chem. Soc.
137, 2695), each a prepared protein with a congeneric ligand series posed in its pocket.
Every ligand becomes one template; its group is the target.

    pip install openmmforcefields      # only needed to rebuild
    python templates/build_seed_library.py [--out templates]

The output is byte-for-byte reproducible for a given openmmforcefields, RDKit and gemmi.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import metadata
from pathlib import Path

from ligfit.templates import TemplateSource, build_library

#: Target folder → (protein file, ligand series file); Bace's spectator TLA.sdf is not a ligand of the series.
SYSTEMS = {
    "bace": ("Bace_protein.pdb", "Bace_ligands_shifted.sdf"),
    "cdk2": ("CDK2_protein.pdb", "CDK2_ligands_shifted.sdf"),
    "jnk1": ("Jnk1_protein.pdb", "Jnk1_ligands.sdf"),
    "mcl1": ("MCL1_protein.pdb", "MCL1_ligands.sdf"),
    "p38a": ("p38_protein.pdb", "p38_ligands_shifted.sdf"),
    "ptp1b": ("PTP1B_protein.pdb", "PTP1B_ligands.sdf"),
    "thrombin": ("Thrombin_protein.pdb", "Thrombin_ligands.sdf"),
    "tyk2": ("Tyk2_protein.pdb", "Tyk2_ligands_shifted.sdf"),
}
METHOD = "FEP benchmark model (Wang et al. 2015, JACS 137:2695) from openmmforcefields {version}"


def seed_sources() -> tuple[list[TemplateSource], Path]:
    """The openmmforcefields systems as template sources, and the package folder their paths are relative to."""
    try:
        import openmmforcefields
    except ImportError:
        raise SystemExit("openmmforcefields is not installed; `pip install openmmforcefields` to rebuild the seed library") from None
    package = Path(openmmforcefields.__file__).resolve().parent
    folder = package / "data" / "perses_jacs_systems"
    method = METHOD.format(version=metadata.version("openmmforcefields"))
    sources = [
        TemplateSource(folder / target / protein, folder / target / ligands, name=target, group=target, method=method)
        for target, (protein, ligands) in SYSTEMS.items()
    ]
    return sources, package.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="library folder (default: this folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # The library folder also holds this script and its README: build beside it, then swap the data in.
    sources, root = seed_sources()
    staging = args.out / ".staging"
    library = build_library(sources, staging, force=True, rebuild="python templates/build_seed_library.py", root=root)
    _swap_in(staging, args.out)
    print(f"{len(library)} templates from {len(sources)} targets written to {args.out}")
    return 0


def _swap_in(staging: Path, out: Path) -> None:
    """Replace the library files in ``out`` with those in ``staging`` (manifest last, as a fresh build)."""
    import os
    import shutil

    from ligfit.templates.library import INDEX, MANIFEST, RECORDS

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # until the new manifest lands, the library reads as half-written
    shutil.rmtree(out / RECORDS, ignore_errors=True)
    os.replace(staging / RECORDS, out / RECORDS)
    os.replace(staging / INDEX, out / INDEX)
    os.replace(staging / MANIFEST, out / MANIFEST)
    shutil.rmtree(staging)


if __name__ == "__main__":
    sys.exit(main())
