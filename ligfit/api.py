"""What users import: ``build`` a protein–ligand model from a map, ``simulate`` a map from a model.

Every function takes paths or in-memory objects, keeps no global state, and can be called
many times in one process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import gemmi

from ligfit import io, maps
from ligfit.dock import DockingOptions
from ligfit.evaluate import ChallengeResult, Evaluation, evaluate_model, run_challenge
from ligfit.evaluate.chemistry import LigandDefinition
from ligfit.evaluate.metrics import MapSource, ModelSource
from ligfit.maps import DensityMap
from ligfit.pipeline import BuildOptions, BuildResult, LigandInput, MapInput, ModelInput, load_map, run_build

log = logging.getLogger(__name__)


def build(
    density_map: MapInput,
    ligand: LigandInput,
    model: ModelInput = None,
    *,
    resolution: float,
    ligand_name: str = "LIG",
    site: str | tuple[float, float, float] | None = None,
    threshold: float = 3.0,
    max_blobs: int = 3,
    copies: int = 1,
    protonation: str = "ph7",
    max_conformers: int | None = None,
    seed: int = 0,
    docking: DockingOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Find where ``ligand`` sits in ``density_map`` around ``model`` and place it.

    ``density_map``: MRC/CCP4 path, a :class:`DensityMap`, or (array in x,y,z order, voxel size Å,
    origin Å). ``ligand``: SMILES, SDF/MOL2 path, CCD code or RDKit Mol. ``model``: PDB/mmCIF
    path or gemmi.Structure (None: the map holds only the ligand). ``resolution`` in Å.
    ``site``: "x,y,z", (x, y, z) or "A:123" to skip the blob search. ``threshold``: blob
    threshold in σ of the difference map. ``copies``: place up to this many copies in
    distinct blobs (e.g. one per subunit). ``progress`` receives one line per stage.

    Returns a :class:`BuildResult`; ``result.found`` says whether the density supports a pose.
    Raises a ``LigfitError`` for bad input.
    """
    options = BuildOptions(
        resolution=resolution,
        ligand_name=ligand_name,
        site=site,
        threshold=threshold,
        max_blobs=max_blobs,
        copies=copies,
        protonation=protonation,
        max_conformers=max_conformers,
        seed=seed,
        docking=docking or DockingOptions(seed=seed),
    )
    return run_build(density_map, ligand, model, options, progress)


def simulate(
    model: str | os.PathLike | gemmi.Structure,
    resolution: float,
    *,
    like: MapInput | None = None,
    voxel_size: float | None = None,
    margin: float = 6.0,
    use_b_factors: bool = False,
    noise: float = 0.0,
    seed: int = 0,
) -> DensityMap:
    """Simulate a map of ``model`` at ``resolution`` Å (see :func:`ligfit.maps.simulate`)."""
    structure = io.read_structure(model)
    grid = load_map(like) if like is not None else None
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return maps.simulate(
        structure, resolution, grid, voxel_size=voxel_size, margin=margin, use_b_factors=use_b_factors, noise=noise, seed=seed
    )


def evaluate(
    model: ModelSource,
    density_map: MapSource,
    *,
    resolution: float,
    reference: ModelSource | None = None,
    ligands: list[str] | None = None,
    ligand_definition: LigandDefinition | None = None,
    whole_model: bool = True,
    add_hydrogens: bool = True,
) -> Evaluation:
    """Score every ligand of ``model`` against ``density_map`` (and ``reference``); see :func:`ligfit.evaluate.evaluate_model`.

    ``model``/``reference``: PDB/mmCIF path or gemmi.Structure; ``density_map``: MRC/CCP4 path, a
    :class:`DensityMap`, or (array in x,y,z order, voxel size Å, origin Å); ``resolution`` in Å.
    Returns an :class:`Evaluation` (``.as_dict()`` is plain JSON-ready data, ``.table()`` a summary).
    """
    return evaluate_model(
        model,
        density_map,
        resolution,
        reference_model=reference,
        ligands=ligands,
        ligand_definition=ligand_definition,
        whole_model=whole_model,
        add_hydrogens=add_hydrogens,
    )


def challenge(
    submissions: str | os.PathLike,
    output: str | os.PathLike,
    *,
    workers: int | None = None,
    retry_failed: bool = False,
    whole_model: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ChallengeResult:
    """Evaluate a submissions table into ``output`` (scores.csv, report.html, rows/*.json); see :func:`ligfit.evaluate.run_challenge`."""
    return run_challenge(submissions, output, workers=workers, retry_failed=retry_failed, whole_model=whole_model, progress=progress)


__all__ = [
    "BuildOptions",
    "BuildResult",
    "ChallengeResult",
    "DensityMap",
    "DockingOptions",
    "Evaluation",
    "build",
    "challenge",
    "evaluate",
    "simulate",
]
