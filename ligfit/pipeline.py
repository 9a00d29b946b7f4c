"""The order of stages for ``build``: inputs → difference map → blobs → docking → result."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem

from ligfit import io, maps, segment
from ligfit.dock import DockingOptions, DockingResult, Pose, dock
from ligfit.errors import BadMapError, BadModelError, LigfitError
from ligfit.ligand import Ligand, load_ligand
from ligfit.maps import DensityMap
from ligfit.report import build_report, write_build_outputs

log = logging.getLogger(__name__)

MapInput = str | os.PathLike | DensityMap | tuple
ModelInput = str | os.PathLike | gemmi.Structure | None
LigandInput = str | os.PathLike | Chem.Mol | Ligand


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``build`` can be told, with its defaults (the CLI mirrors these)."""

    resolution: float
    ligand_name: str = "LIG"
    site: str | tuple[float, float, float] | None = None
    threshold: float = 3.0  # σ of the difference map
    max_blobs: int = 3
    copies: int = 1  # placements in distinct blobs (e.g. one ligand per subunit)
    protonation: str = "ph7"
    max_conformers: int | None = None
    seed: int = 0
    docking: DockingOptions = field(default_factory=DockingOptions)


@dataclass
class BuildResult:
    """What ``build`` found: the blobs, the ranked poses, the verdict, and a report."""

    density_map: DensityMap
    model: gemmi.Structure | None
    ligand: Ligand
    difference: segment.DifferenceMap
    blobs: list[segment.Blob]
    docking: DockingResult
    options: BuildOptions
    timings: dict[str, float]
    inputs: dict
    message: str

    @property
    def found(self) -> bool:
        """Whether the density supports a pose (otherwise ``best_pose`` is None)."""
        return self.docking.best is not None

    @property
    def best_pose(self) -> Pose | None:
        return self.docking.best

    @property
    def poses(self) -> list[Pose]:
        return self.docking.poses

    @property
    def placements(self) -> list[Pose]:
        """Every supported placement (up to ``copies``), best first; the first is ``best_pose``."""
        return self.docking.placements

    @property
    def confidence(self) -> float:
        return self.docking.confidence

    @property
    def report(self) -> dict:
        return build_report(self)

    def complex_structure(self) -> gemmi.Structure | None:
        """The protein model with each placement as a ligand residue in a chain of its own (None when nothing was found)."""
        if not self.placements:
            return None
        heavy = self.ligand.heavy_atom_count
        structure = self.model if self.model is not None else _empty_structure()
        for pose in self.placements:
            structure = io.add_ligand(
                structure,
                self.ligand.elements[:heavy],
                list(self.ligand.atom_names[:heavy]),
                pose.coordinates[:heavy],
                residue_name=self.options.ligand_name,
            )
        return structure

    def write(self, folder: str | os.PathLike, force: bool = False, command: str | None = None) -> Path:
        """Write model.cif, model.pdb, ligand.sdf, poses.sdf, difference.mrc and report.json (with ``command`` if given)."""
        return write_build_outputs(self, Path(folder), force, command)


def _empty_structure() -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    return structure


def run_build(
    density_map: MapInput,
    ligand: LigandInput,
    model: ModelInput,
    options: BuildOptions,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Run every stage of ``build`` and return the result (nothing is written)."""
    say = progress or (lambda message: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    if not options.resolution or options.resolution <= 0:
        raise BadMapError(f"resolution must be a positive number of Å, got {options.resolution!r}")
    say("reading inputs")
    structure = io.read_structure(model) if model is not None else None
    protein = io.heavy_atoms(structure) if structure is not None else None
    around = protein.coordinates if protein is not None and len(protein) else None
    density = load_map(density_map, around)
    if protein is not None:
        check_overlap(density, protein.coordinates, model)
        already = int(np.sum(protein.residue_name == options.ligand_name))
        if already:
            log.warning(
                "the model already holds %d atom(s) in residues named %s; they are treated as part of the model "
                "(remove them to fit the ligand there, or choose another --ligand-name)",
                already,
                options.ligand_name,
            )
    inputs = {
        "map": _describe_source(density_map),
        "map_grid": list(density.shape),
        "voxel_size_A": np.round(density.voxel_size, 4).tolist(),
        "origin_A": np.round(density.origin, 3).tolist(),
        "resolution_A": options.resolution,
        "model": None if model is None else _describe_source(model),
        "model_heavy_atoms": None if protein is None else len(protein),
    }
    lap("inputs")

    say("preparing the ligand")
    prepared = (
        ligand
        if isinstance(ligand, Ligand)
        else load_ligand(
            ligand, name=options.ligand_name, protonation=options.protonation, max_conformers=options.max_conformers, seed=options.seed
        )
    )
    inputs["ligand"] = _describe_source(ligand) if not isinstance(ligand, Ligand) else prepared.smiles
    lap("ligand")

    say("computing the difference map")
    try:
        difference = segment.difference_map(density, structure, options.resolution)
    except ValueError as error:
        raise BadModelError(f"cannot subtract the model from the map: {error}") from None
    if structure is not None and difference.model_cc < 0.3:
        log.warning(
            "the model explains the map poorly (CC %.2f near the model): check the voxel size, origin and hand of the map, "
            "and that the model was fitted to it",
            difference.model_cc,
        )
    heavy_xyz = prepared.conformer_coordinates()[:, : prepared.heavy_atom_count]
    shape = segment.LigandShape.from_conformers(heavy_xyz)
    protein_xyz = None if protein is None else protein.coordinates
    if options.site is not None:
        center = site_center(options.site, structure)
        radius = float(np.max(np.linalg.norm(heavy_xyz - heavy_xyz.mean(1, keepdims=True), axis=-1))) + 4.0
        blobs = [segment.site_blob(difference, center, radius, shape, protein_xyz)]
    else:
        blobs = segment.find_blobs(difference, shape, protein_xyz, threshold=options.threshold)
    lap("segmentation")

    message = _precheck(blobs, prepared, options)
    if message:
        docking = DockingResult([], [], message, options.docking)
    else:
        chosen = segment.select_blobs(blobs, max(options.max_blobs, options.copies))
        say(f"docking into {len(chosen)} blob(s)")
        protein_arrays = None if protein is None else (protein.coordinates, protein.elements)
        docked = iter(range(1, len(chosen) + 1))
        docking = dock(
            prepared,
            difference.difference,
            chosen,
            options.resolution,
            protein_arrays,
            options.docking,
            progress=lambda _: say(f"docked blob {next(docked)} of {len(chosen)}"),
            copies=options.copies,
        )
        message = docking.reason + ("" if docking.supported else _size_note(blobs, prepared))
    lap("docking")
    return BuildResult(density, structure, prepared, difference, blobs, docking, options, timings, inputs, message)


def _precheck(blobs: list[segment.Blob], ligand: Ligand, options: BuildOptions) -> str:
    """Why docking is pointless, or '' when it is worth trying."""
    if not blobs:
        return f"no convincing density: no unexplained density above {options.threshold} σ near the model"
    sizes = [b.estimated_heavy_atoms for b in blobs if b.estimated_heavy_atoms is not None]
    if options.site is None and sizes and max(sizes) < 0.3 * ligand.heavy_atom_count:
        return (
            f"no convincing density: the ligand has {ligand.heavy_atom_count} heavy atoms but the largest "
            f"unexplained blob holds about {max(sizes):.0f}; check the ligand, lower --threshold, or name the site with --site"
        )
    return ""


def _size_note(blobs: list[segment.Blob], ligand: Ligand) -> str:
    """Say so when the ligand is clearly bigger than any blob (a likely reason nothing fits)."""
    sizes = [b.estimated_heavy_atoms for b in blobs if b.estimated_heavy_atoms is not None]
    if sizes and max(sizes) < 0.6 * ligand.heavy_atom_count:
        return (
            f"; the ligand has {ligand.heavy_atom_count} heavy atoms but the largest unexplained blob holds about "
            f"{max(sizes):.0f}: check the ligand or name the site with --site"
        )
    return ""


def load_map(source: MapInput, around: np.ndarray | None = None) -> DensityMap:
    """A DensityMap from a path, a DensityMap, or (array in x,y,z order, voxel size Å, origin Å)."""
    if isinstance(source, DensityMap):
        return source
    if isinstance(source, tuple):
        if len(source) != 3:
            raise BadMapError("an in-memory map is (values in x,y,z order, voxel size in Å, origin in Å)")
        values, voxel_size, origin = source
        density = DensityMap(np.asarray(values), voxel_size, origin)
        maps.check_values(density.values, "the map given in memory")
        return density
    return maps.read_map(source, around=around)


def check_overlap(density: DensityMap, coordinates: np.ndarray, model_source: object) -> None:
    """Refuse a model that does not sit inside the map box, and say which origin would fix it."""
    inside = maps.fraction_inside(density, coordinates)
    if inside >= 0.5:
        return
    hints = []
    for label, origin in (("0,0,0", np.zeros(3)), ("the box centred on 0", -density.extent / 2)):
        if not np.allclose(origin, density.origin) and maps.fraction_inside(density, coordinates, origin=origin) >= 0.5:
            hints.append(f"it would if the map origin were {label} (an ORIGIN/NSTART convention mix-up?)")
    hint = "; " + hints[0] if hints else "; check that model and map belong together"
    lo, hi = np.round(density.origin, 1).tolist(), np.round(density.upper, 1).tolist()
    raise BadModelError(
        f"model {_describe_source(model_source)} does not overlap the map: only {inside:.0%} of its atoms lie in the "
        f"map box {lo}–{hi} Å{hint}"
    )


def site_center(site: str | tuple | list | np.ndarray, structure: gemmi.Structure | None) -> np.ndarray:
    """A site given as (x, y, z), "x,y,z" or "chain:residue-number" → its centre in Å."""
    if isinstance(site, str) and ":" in site:
        if structure is None:
            raise BadModelError(f"site {site!r} names a residue, but no model was given; give --model or x,y,z")
        chain, _, number = site.partition(":")
        try:
            return io.residue_center(structure, chain.strip(), int(number))
        except ValueError:
            raise LigfitError(f"site {site!r}: write a residue as CHAIN:NUMBER, e.g. A:123") from None
    try:
        values = [float(v) for v in (site.split(",") if isinstance(site, str) else site)]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3:
        raise LigfitError(f"site {site!r}: give x,y,z in Å (e.g. 12.5,3.0,-7.2) or a residue as CHAIN:NUMBER")
    return np.array(values)


def _describe_source(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, gemmi.Structure):
        return source.name or "gemmi.Structure in memory"
    if isinstance(source, Chem.Mol):
        return Chem.MolToSmiles(source)
    return type(source).__name__ + " in memory"
