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
from ligfit.ligand import load_ligand
from ligfit.maps import DensityMap
from ligfit.pipeline import BuildOptions, BuildResult, LigandInput, MapInput, ModelInput, load_map, run_build
from ligfit.refine import LigandParameterCache, ModelRefinement, RefinementOptions, refine_model
from ligfit.templates import TemplateLibrary, TemplateOptions, build_library, load_library, shipped_library_path
from ligfit.trace import BUILD_TRACE, SequenceInput, TraceOptions, TraceResult
from ligfit.trace import trace as trace_map

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
    use_templates: bool = True,
    templates: str | os.PathLike | None = None,
    template_options: TemplateOptions | None = None,
    refine: bool = True,
    refinement: RefinementOptions | None = None,
    parameter_cache: LigandParameterCache | None = None,
    sequence: SequenceInput = None,
    trace: TraceOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Find where ``ligand`` sits in ``density_map`` around ``model`` and place it.

    ``density_map``: MRC/CCP4 path, a :class:`DensityMap`, or (array in x,y,z order, voxel size Å,
    origin Å). ``ligand``: SMILES, SDF/MOL2 path, CCD code or RDKit Mol. ``model``: PDB/mmCIF
    path or gemmi.Structure (None: the map holds only the ligand). ``resolution`` in Å.
    ``site``: "x,y,z", (x, y, z) or "A:123" to skip the blob search. ``threshold``: blob
    threshold in σ of the difference map. ``copies``: place up to this many copies in
    distinct blobs (e.g. one per subunit). ``templates``: a template library folder (default: the
    shipped one; ``use_templates=False`` docks from the density alone). ``refine``: refine ligand
    and pocket against the map in OpenMM (``refinement`` sets how). ``parameter_cache``: a
    :class:`LigandParameterCache` shared across calls, so a screen parametrises each ligand once.
    ``sequence`` (FASTA path, one-letter sequence or a list): with no ``model``, trace a protein
    model de novo with the backbone network and thread this sequence onto it (``trace`` sets how;
    default :data:`ligfit.trace.BUILD_TRACE`). ``progress`` receives one line per stage.

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
        use_templates=use_templates,
        templates=templates,
        template_options=template_options or TemplateOptions(seed=seed),
        refine=refine,
        refinement=refinement or RefinementOptions(seed=seed),
        sequence=sequence,
        trace=trace or BUILD_TRACE,
    )
    return run_build(density_map, ligand, model, options, progress, parameter_cache)


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


def trace(
    density_map: MapInput,
    *,
    resolution: float,
    sequence: SequenceInput = None,
    options: TraceOptions | None = None,
    device: str = "cpu",
    progress: Callable[[str, int, int], None] | None = None,
) -> TraceResult:
    """Build a protein model de novo from the map (backbone network, Cα tracing, sequence threading).

    ``sequence``: FASTA path, one-letter sequence, or a list (one per distinct chain); without it
    the chains carry the most likely residue types. Raises a ``LigfitError`` subclass for maps
    coarser than 5 Å, maps too large to run, maps without protein-like density, and sequences
    that fit the trace no better than shuffled ones. ``.write(path)`` writes the model.
    """
    return trace_map(load_map(density_map), resolution, sequence, options=options or TraceOptions(), device=device, progress=progress)


def refine(
    model: str | os.PathLike | gemmi.Structure,
    density_map: MapInput,
    ligand: LigandInput,
    *,
    resolution: float,
    ligand_name: str = "LIG",
    options: RefinementOptions | None = None,
    parameter_cache: LigandParameterCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelRefinement:
    """Refine every copy of the ligand already in ``model`` (residues named ``ligand_name``) with its pocket into the map.

    ``ligand`` gives the chemistry (SMILES, SDF/MOL2 path, CCD code or RDKit Mol); the atoms are
    matched to the residue by graph. Returns the refined model and one result per copy with
    before/after ligand CC, strain, clashes and bond/angle deviations.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    structure = io.read_structure(model)
    density = load_map(density_map, around=io.heavy_atoms(structure).coordinates)
    chemistry = load_ligand(ligand, name=ligand_name, max_conformers=1)
    return refine_model(
        structure, chemistry, density, resolution, ligand_name=ligand_name, options=options, cache=parameter_cache, progress=progress
    )


def build_templates(
    sources: list[str | os.PathLike],
    output: str | os.PathLike,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TemplateLibrary:
    """Make a template library in ``output`` from complexes (PDB/mmCIF), ``protein,ligands.sdf`` pairs or entry folders."""
    return build_library(sources, output, force=force, progress=progress)


def template_library(folder: str | os.PathLike | None = None) -> TemplateLibrary:
    """Open a template library (default: the shipped one); ``.describe()`` says what it holds.

    Raises a clear error naming the fix when the folder is missing, empty, half-written or from another format version.
    """
    return load_library(folder if folder is not None else shipped_library_path())


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


def fit(
    model: ModelInput,
    density_map: MapInput,
    resolution: float,
    *,
    copies: int = 1,
    plddt_cutoff: float | None = 70.0,
    pae: str | os.PathLike | None = None,
    refine: bool = True,
    partial: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
):
    """Place a predicted model (AlphaFold, a homologue) that is not yet fitted into ``density_map``; see :mod:`ligfit.predicted`.

    ``model``: PDB/mmCIF path or gemmi.Structure (pLDDT in the B-factor column is used when
    present: residues below ``plddt_cutoff`` are left out; None keeps all). ``density_map``:
    MRC/CCP4 path, a :class:`DensityMap`, or (array in x,y,z order, voxel size Å, origin Å);
    ``resolution`` in Å. ``copies``: place each chain this many times (a monomer prediction in a
    homo-oligomer map). ``pae``: AlphaFold's PAE JSON, to split domains. ``refine``: refine by
    domains after the rigid fit. Returns a :class:`ligfit.predicted.FitResult` (``.structure``,
    ``.placements``, ``.as_dict()``); raises ``ModelDoesNotFitError`` when a chain fits nowhere
    (with ``partial``, only when none fits).
    """
    from ligfit.errors import BadModelError as _BadModelError
    from ligfit.predicted import fit_model, read_pae

    if model is None:
        raise _BadModelError("fit needs a model to place; give a PDB/mmCIF file of the predicted model")
    return fit_model(
        io.read_structure(model),
        load_map(density_map),
        resolution,
        copies=copies,
        plddt_cutoff=plddt_cutoff,
        pae=read_pae(pae) if pae is not None else None,
        refine=refine,
        partial=partial,
        seed=seed,
        progress=progress,
    )


__all__ = [
    "BuildOptions",
    "BuildResult",
    "ChallengeResult",
    "DensityMap",
    "DockingOptions",
    "Evaluation",
    "LigandParameterCache",
    "RefinementOptions",
    "TemplateOptions",
    "ModelRefinement",
    "TemplateLibrary",
    "TraceResult",
    "build",
    "build_templates",
    "challenge",
    "evaluate",
    "refine",
    "simulate",
    "template_library",
    "trace",
]
