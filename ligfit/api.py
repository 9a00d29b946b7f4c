"""What users import: ``build`` a protein–ligand model from a map, ``simulate`` a map from a model.

Every function takes paths or in-memory objects, keeps no global state, and can be called
many times in one process.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import gemmi

from ligfit import checks, io, maps
from ligfit.dock import DockingOptions
from ligfit.errors import BadModelError
from ligfit.evaluate import ChallengeResult, Evaluation, evaluate_model, run_challenge
from ligfit.evaluate.chemistry import LigandDefinition
from ligfit.evaluate.metrics import ModelSource
from ligfit.ligand import load_ligand
from ligfit.maps import DensityMap, MapSource, load_map
from ligfit.pipeline import BuildOptions, BuildResult, LigandInput, MapInput, ModelInput, run_build
from ligfit.predicted import PLDDT_CUTOFF, FitResult, fit_model, plddt, read_pae
from ligfit.refine import LigandParameterCache, ModelRefinement, RefinementOptions, WholeModelOptions, refine_model, refine_whole_model
from ligfit.runtime import Progress, no_progress, torch_device
from ligfit.screen.run import ScreenOptions
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
    ligand_name: str = BuildOptions.ligand_name,
    site: str | tuple[float, float, float] | None = BuildOptions.site,
    threshold: float = BuildOptions.threshold,
    max_blobs: int = BuildOptions.max_blobs,
    copies: int | str = BuildOptions.copies,
    protonation: str = BuildOptions.protonation,
    max_conformers: int | None = BuildOptions.max_conformers,
    seed: int = BuildOptions.seed,
    docking: DockingOptions | None = None,
    use_templates: bool = BuildOptions.use_templates,
    templates: str | os.PathLike | None = BuildOptions.templates,
    template_options: TemplateOptions | None = None,
    refine: bool = BuildOptions.refine,
    refinement: RefinementOptions | None = None,
    parameter_cache: LigandParameterCache | None = None,
    sequence: SequenceInput = BuildOptions.sequence,
    trace: TraceOptions | None = None,
    fit_model: bool | None = BuildOptions.fit_model,
    build_loops: bool = BuildOptions.build_loops,
    complete_side_chains: bool = BuildOptions.complete_side_chains,
    progress: Progress = no_progress,
) -> BuildResult:
    """Find where ``ligand`` sits in ``density_map`` around ``model`` and place it.

    ``density_map``: MRC/CCP4 path, a :class:`DensityMap`, or (array in x,y,z order, voxel size Å,
    origin Å). ``ligand``: SMILES, SDF/MOL2 path, CCD code or RDKit Mol. ``model``: PDB/mmCIF
    path or gemmi.Structure (None: the map holds only the ligand). ``resolution`` in Å.
    ``site``: "x,y,z", (x, y, z) or "A:123" to skip the blob search. ``threshold``: blob
    threshold in σ of the difference map. ``copies``: place up to this many copies in
    distinct blobs (e.g. one per subunit), or ``"auto"``: one in every blob whose density
    supports the ligand. ``max_conformers``: the ligand's conformer ensemble (None: 10 + 6 per rotatable
    bond, at most 60, as 16 CPU-seconds of embedding allow; docking turns rotatable bonds, not rings, so a
    macrocycle gets 150 and a budget to match). ``templates``: a template library folder (default: the shipped one;
    ``use_templates=False`` docks from the density alone). ``refine``: refine ligand and pocket
    against the map in OpenMM (``refinement`` sets how). ``parameter_cache``: a
    :class:`LigandParameterCache` shared across calls, so a screen parametrises each ligand once.
    ``sequence`` (FASTA path, one-letter sequence or a list): with no ``model``, trace a protein
    model de novo with the backbone network and thread this sequence onto it (``trace`` sets how;
    default :data:`ligfit.trace.BUILD_TRACE`). ``fit_model``: place ``model`` in the map first, as
    :func:`fit` does (None: when it carries pLDDT and is not placed yet; an experimental model that
    does not fit is refused instead). ``build_loops``: build the short gaps of ``model`` whose loop
    the map holds (backbone and Cβ, used to explain their density; the written model is not
    changed), so that an unmodelled loop is not taken for a ligand; ``complete_side_chains``: likewise
    complete the side chains ``model`` cuts short at Cβ (and those of built loops whose residues its
    sequence names), fitted into the map. ``progress`` hears each stage (see :class:`ligfit.runtime.Progress`).

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
        fit_model=fit_model,
        build_loops=build_loops,
        complete_side_chains=complete_side_chains,
    )
    return run_build(density_map, ligand, model, options, progress, parameter_cache)


def simulate(
    model: str | os.PathLike | gemmi.Structure,
    resolution: float,
    *,
    like: MapInput | None = None,
    voxel_size: float | None = None,
    margin: float = maps.SIMULATION_MARGIN,
    use_b_factors: bool = False,
    noise: float = 0.0,
    seed: int = 0,
) -> DensityMap:
    """Simulate a map of ``model`` at ``resolution`` Å (see :func:`ligfit.maps.simulate`)."""
    resolution = checks.check_resolution(resolution)
    if voxel_size is not None:
        voxel_size = checks.check_number(voxel_size, "voxel_size", minimum=0.0, exclusive_minimum=True, unit="Å")
    margin = checks.check_number(margin, "margin", minimum=0.0, unit="Å")
    noise = checks.check_number(noise, "noise", minimum=0.0)
    seed = checks.check_number(seed, "seed", minimum=0, integer=True)
    structure = io.read_structure(model)
    grid = load_map(like) if like is not None else None
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
    progress: Progress = no_progress,
) -> TraceResult:
    """Build a protein model de novo from the map (backbone network, Cα tracing, sequence threading).

    ``sequence``: FASTA path, one-letter sequence, or a list (one per distinct chain); without it
    the chains carry the most likely residue types. Raises a ``LigfitError`` subclass for maps
    coarser than 5 Å, maps too large to run, maps without protein-like density, and sequences
    that fit the trace no better than shuffled ones. ``.write(path)`` writes the model.
    """
    resolution = checks.check_resolution(resolution)
    network_device = str(torch_device(device))  # a bad name or a missing GPU: a BadOptionError now, not after loading the map
    return trace_map(
        load_map(density_map), resolution, sequence, options=options or TraceOptions(), device=network_device, progress=progress
    )


def refine(
    model: str | os.PathLike | gemmi.Structure,
    density_map: MapInput,
    ligand: LigandInput,
    *,
    resolution: float,
    ligand_name: str = "LIG",
    options: RefinementOptions | None = None,
    parameter_cache: LigandParameterCache | None = None,
    progress: Progress = no_progress,
) -> ModelRefinement:
    """Refine every copy of the ligand already in ``model`` (residues named ``ligand_name``) with its pocket into the map.

    ``ligand`` gives the chemistry (SMILES, SDF/MOL2 path, CCD code or RDKit Mol); the atoms are
    matched to the residue by graph. Returns the refined model and one result per copy with
    before/after ligand CC, strain, clashes and bond/angle deviations.
    """
    resolution = checks.check_resolution(resolution)
    ligand_name = checks.check_residue_name(ligand_name)
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
    progress: Progress = no_progress,
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
    resolution = checks.check_resolution(resolution)
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
    progress: Progress = no_progress,
    scheduler: str | object | None = None,
) -> ChallengeResult:
    """Evaluate a submissions table into ``output`` (scores.csv, report.html, rows/*.json); see :func:`ligfit.evaluate.run_challenge`."""
    return run_challenge(
        submissions, output, workers=workers, retry_failed=retry_failed, whole_model=whole_model, progress=progress, scheduler=scheduler
    )


# Screening and identification ------------------------------------------------------------------


def screen(
    density_map: MapInput,
    *,
    model: ModelInput,
    ligands: object,
    resolution: float,
    site: str | tuple[float, float, float] | None = None,
    top: int = 20,
    workers: int | None = None,
    scheduler: str | object | None = None,
    out: str | os.PathLike | None = None,
    seed: int = BuildOptions.seed,
    threshold: float = ScreenOptions.threshold,
    max_blobs: int = ScreenOptions.max_blobs,
    max_conformers: int | None = ScreenOptions.max_conformers,
    docking: DockingOptions | None = None,
    quick: bool = False,
    device: str | None = None,
    progress: Progress = no_progress,
):
    """Dock every ligand of a library into the map's unexplained density and rank them.

    ``ligands``: a SMILES (one per line, optional name), SDF or CSV (SMILES column) path, or a
    list of SMILES / (name, SMILES) / RDKit Mols. The map, difference map and blobs are computed
    once; ligands run on ``workers`` local processes (default: every core) or, with
    ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``), on a Dask cluster. ``out``:
    a folder for ranking.csv, one JSON per ligand (written as each finishes, so a rerun
    resumes) and a folder per top ligand. Returns a :class:`ligfit.screen.ScreenResult`: one
    row per ligand, best first, and a verdict (``.none_fits`` when no ligand explains the density).
    Each ligand gets ``build``'s docking search; ``quick``: about a quarter of it (twice as fast,
    more true ligands missed), ``docking``: settings of your own. ``device``: where the docking search runs
    (``auto``, ``cpu``, ``cuda``, ``cuda:N``; None: the docking settings' own, ``auto`` unless set there).
    ``max_conformers``: conformers per ligand (at least 24 with 9–13 rotatable bonds and 48 for a macrocycle, which takes
    about three times as long; None: build's count for every ligand).
    """
    from ligfit.screen import QUICK_SCREEN_DOCKING, SCREEN_DOCKING, run_screen

    options = ScreenOptions(
        resolution=resolution,
        site=site,
        threshold=threshold,
        max_blobs=max_blobs,
        max_conformers=max_conformers,
        seed=seed,
        docking=_on_device(docking or (QUICK_SCREEN_DOCKING if quick else SCREEN_DOCKING), device),
    )
    return run_screen(density_map, model, ligands, options, top=top, workers=workers, scheduler=scheduler, out=out, progress=progress)


def identify(
    density_map: MapInput,
    *,
    model: ModelInput,
    resolution: float,
    blob: int | None = 1,
    site: str | tuple[float, float, float] | None = None,
    top: int = 10,
    workers: int | None = None,
    scheduler: str | object | None = None,
    out: str | os.PathLike | None = None,
    seed: int = BuildOptions.seed,
    threshold: float = ScreenOptions.threshold,
    quick: bool = False,
    docking: DockingOptions | None = None,
    device: str | None = None,
    progress: Progress = no_progress,
):
    """Rank the shipped library of common ligands (cofactors, nucleotides, heme, buffer, detergents,
    lipids, sugars, ions; see ligfit/screen/common_ligands.csv) for one blob (1 = the largest) or a site.
    Each candidate gets ``screen``'s docking search; ``quick``, ``docking`` and ``device`` as in :func:`screen`.
    """
    from ligfit.screen import QUICK_SCREEN_DOCKING, SCREEN_DOCKING, run_identify

    options = ScreenOptions(
        resolution=resolution,
        site=site,
        blob=None if site is not None else blob,
        threshold=threshold,
        max_blobs=1,
        seed=seed,
        docking=_on_device(docking or (QUICK_SCREEN_DOCKING if quick else SCREEN_DOCKING), device),
    )
    return run_identify(density_map, model, options, top=top, workers=workers, scheduler=scheduler, out=out, progress=progress)


def _on_device(docking: DockingOptions, device: str | None) -> DockingOptions:
    return docking if device is None else dataclasses.replace(docking, device=device)


def fit(
    model: ModelInput,
    density_map: MapInput,
    resolution: float,
    *,
    copies: int = 1,
    plddt_cutoff: float | None = PLDDT_CUTOFF,
    pae: str | os.PathLike | None = None,
    refine: bool = True,
    flexible: bool = True,
    partial: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
) -> FitResult:
    """Place a predicted model (AlphaFold, a homologue) that is not yet fitted into ``density_map``; see :mod:`ligfit.predicted`.

    ``model``: PDB/mmCIF path or gemmi.Structure (pLDDT in the B-factor column is used when
    present: residues below ``plddt_cutoff`` are left out; None keeps all). ``density_map``:
    MRC/CCP4 path, a :class:`DensityMap`, or (array in x,y,z order, voxel size Å, origin Å);
    ``resolution`` in Å. ``copies``: place each chain this many times (a monomer prediction in a
    homo-oligomer map). ``pae``: AlphaFold's PAE JSON, to split domains. ``refine``: refine by
    domains after the rigid fit. ``flexible``: then refine the whole model flexibly against the map
    (:func:`ligfit.refine.refine_whole_model`, restraints scaled by pLDDT; its record is
    ``result.flexible``). Returns a :class:`ligfit.predicted.FitResult` (``.structure``,
    ``.placements``, ``.as_dict()``); raises ``ModelDoesNotFitError`` when a chain fits nowhere
    (with ``partial``, only when none fits).
    """
    if model is None:
        raise BadModelError("fit needs a model to place; give a PDB/mmCIF file of the predicted model")
    resolution = checks.check_resolution(resolution)
    copies = checks.check_number(copies, "copies", minimum=1, integer=True)
    density = load_map(density_map)
    fitted = fit_model(
        io.read_structure(model),
        density,
        resolution,
        copies=copies,
        plddt_cutoff=plddt_cutoff,
        pae=read_pae(pae) if pae is not None else None,
        refine=refine,
        partial=partial,
        seed=seed,
        progress=progress,
    )
    if not flexible:
        return fitted
    progress("refining the fitted model flexibly against the map")
    confidence = plddt(fitted.structure)
    refined = refine_whole_model(fitted.structure, density, resolution, confidence=confidence, options=WholeModelOptions(seed=seed))
    return fitted.with_flexible(refined.structure, refined.summary(), refined.seconds)


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
