"""Scripts that open a build's result in ChimeraX (``open_in_chimerax.cxc``) and Coot (``open_in_coot.py``).

Both open the model and the input map at the report's contour, the difference map at ± its
threshold, show the map only around the ligand, centre on the ligand and colour by chain.
Files of the build folder are named relative to the script (ChimeraX runs a .cxc from its own
folder; the Coot script finds its folder itself); the input map, which the build folder does not
hold, is named by its absolute path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ligfit.io import write_text

CHIMERAX_SCRIPT = "open_in_chimerax.cxc"
COOT_SCRIPT = "open_in_coot.py"
MAP_COLOUR = "#3f6fd0"
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#20a020", "#e03030"


@dataclass(frozen=True)
class ViewerScene:
    """What the scripts open and where they look. Paths: ``model``/``difference`` relative to the build folder."""

    model: str | None  # e.g. "model.cif" (relative to the folder) or an absolute path; None: no model
    ligand_name: str  # residue name of the ligand
    centre: tuple[float, float, float]  # Å, where to look (the best placement's centre)
    map_path: str | None  # absolute path of the input map, None when it was given in memory
    map_level: float  # contour of the input map (its own units)
    difference: str | None = "difference.mrc"
    difference_level: float | None = None  # ± contour of the difference map
    placed: bool = True  # False: nothing was placed, ``centre`` is the best blob (or the map's centre)
    zone: float = 2.4  # Å: map shown within this distance of the ligand
    pocket_radius: float = 5.0  # Å: residues shown as sticks around the ligand


def write_viewer_scripts(folder: str | os.PathLike, scene: ViewerScene, final_folder: str | os.PathLike | None = None) -> list[Path]:
    """Write both scripts into ``folder`` (atomically each) and return their paths.

    ``final_folder``: where the folder will end up, when it is written in a staging folder first.
    """
    folder = Path(folder)
    written = []
    for name, text in ((CHIMERAX_SCRIPT, chimerax_script(scene)), (COOT_SCRIPT, coot_script(scene, final_folder or folder))):
        write_text(folder / name, text)
        written.append(folder / name)
    return written


def chimerax_script(scene: ViewerScene) -> str:
    """ChimeraX commands (a .cxc file; ChimeraX runs it from its own folder, so relative paths work)."""
    ligand = f":{scene.ligand_name}"
    lines = ["# ligfit: open the build in ChimeraX (chimerax open_in_chimerax.cxc, or File > Open)."]
    models: dict[str, int] = {}
    if scene.model is not None:
        lines.append(f"open {_quote(scene.model)}")
        models["model"] = 1
    if scene.map_path is not None:
        lines.append(f"open {_quote(scene.map_path)}")
        models["map"] = len(models) + 1
    if scene.difference is not None:
        lines.append(f"open {_quote(scene.difference)}")
        models["difference"] = len(models) + 1
    if "model" in models:
        lines += ["color #1 bychain", "color #1 byhetero", "cartoon #1", "hide #1 atoms"]
        if scene.placed:
            lines += [f"show {ligand} atoms", f"show {ligand} :<{scene.pocket_radius:g} atoms", f"style {ligand} stick"]
    if "map" in models:
        lines.append(f"volume #{models['map']} style mesh level {scene.map_level:.5g} color {MAP_COLOUR}")
    if "difference" in models and scene.difference_level is not None:
        level = abs(scene.difference_level)
        lines.append(
            f"volume #{models['difference']} style mesh level {-level:.5g} color {NEGATIVE_COLOUR} level {level:.5g} color {POSITIVE_COLOUR}"
        )
    maps = ",".join(str(models[key]) for key in ("map", "difference") if key in models)
    x, y, z = (float(v) for v in scene.centre)
    if scene.placed and "model" in models:
        if maps:
            lines.append(f"volume zone #{maps} nearAtoms {ligand} range {scene.zone:g}")
        lines += [f"view {ligand}", f"cofr {ligand}"]
    else:  # nothing placed: look at the point of interest (the best blob), the maps shown in a box around it
        if maps:
            half = scene.pocket_radius + 5
            lines.append(f"volume #{maps} region all")
            lines.append(f"marker #20 position {x:.3f},{y:.3f},{z:.3f} color yellow radius 0.3")
            lines.append(f"volume zone #{maps} nearAtoms #20 range {half:g}")
        lines += [f"cofr {x:.3f},{y:.3f},{z:.3f}", "view #20" if maps else "view", "zoom 0.2" if maps else ""]
    lines.append("")
    return "\n".join(lines)


def coot_script(scene: ViewerScene, folder: str | os.PathLike) -> str:
    """A Python script for Coot 0.9 and 1.x (coot --script open_in_coot.py, or Calculate > Run Script)."""
    x, y, z = (float(v) for v in scene.centre)
    return f'''"""ligfit: open the build in Coot (coot --script open_in_coot.py, or Calculate > Run Script...)."""

import inspect
import os

try:
    import coot  # Coot 1.x: the API is a module
except ImportError:  # Coot 0.9: the API is in this script's namespace
    coot = None

try:
    HERE = os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe())))
except (TypeError, OSError):
    HERE = {str(Path(folder).resolve())!r}
MODEL = {_model_expression(scene.model)}
MAP = {scene.map_path!r}  # the input map (not copied into the build folder)
MAP_LEVEL = {scene.map_level!r}
DIFFERENCE = {None if scene.difference is None else scene.difference!r}
DIFFERENCE_LEVEL = {None if scene.difference_level is None else abs(scene.difference_level)!r}
CENTRE = ({x:.3f}, {y:.3f}, {z:.3f})  # the ligand, Å
MAP_RADIUS = {max(8.0, scene.pocket_radius + 3):.1f}  # Å: maps are drawn this far around the centre


def api(name):
    function = getattr(coot, name, None) if coot is not None else globals().get(name)
    if function is None:
        raise NameError("this Coot has no " + name)
    return function


def optional(name, *args):
    """Call a function that older or newer Coots may lack."""
    function = getattr(coot, name, None) if coot is not None else globals().get(name)
    return function(*args) if function is not None else None


if MODEL is not None:
    imol = api("read_pdb")(MODEL)
    optional("set_colour_by_chain", imol)
if MAP is not None and os.path.isfile(MAP):
    imap = api("handle_read_ccp4_map")(MAP, 0)
    api("set_contour_level_absolute")(imap, MAP_LEVEL)
if DIFFERENCE is not None and DIFFERENCE_LEVEL is not None:
    idifference = api("handle_read_ccp4_map")(os.path.join(HERE, DIFFERENCE), 1)
    api("set_contour_level_absolute")(idifference, DIFFERENCE_LEVEL)
optional("set_map_radius", MAP_RADIUS)
optional("set_map_radius_em", MAP_RADIUS)
api("set_rotation_centre")(*CENTRE)
optional("set_zoom", 30.0)
'''


def ligand_centre(coordinates: np.ndarray) -> tuple[float, float, float]:
    """Centre (Å) of a ligand's heavy atoms, rounded for a script."""
    centre = np.asarray(coordinates, dtype=float).reshape(-1, 3).mean(axis=0)
    return tuple(round(float(v), 3) for v in centre)


def _model_expression(model: str | None) -> str:
    """Python for the model's path in the Coot script: beside the script, or absolute as given."""
    if model is None:
        return "None"
    return repr(model) if Path(model).is_absolute() else f"os.path.join(HERE, {model!r})"


def _quote(path: str) -> str:
    return f'"{path}"' if any(ch.isspace() for ch in path) else path
