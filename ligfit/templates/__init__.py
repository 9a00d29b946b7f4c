"""Template complexes: protein–ligand complexes whose ligands seed docking with chemically informed poses.

``library`` defines the on-disk format (records + index + manifest) and opens it; ``sources``
reads complexes into records and builds a library; ``search`` ranks templates for a ligand in
a blob by ligand similarity and pocket (or blob-shape) similarity; ``transplant`` turns the
best ones into :class:`~ligfit.records.SeedPose` objects that compete in docking.

A build calls :func:`seeds_for_build` (the shipped library unless one is named) and passes
``.seeds`` to :func:`ligfit.dock.dock`; ``.summary(best_pose.source)`` goes into the report.
"""

from ligfit.templates.errors import TemplateLibraryError, TemplateSourceError
from ligfit.templates.library import (
    FORMAT_VERSION,
    Pocket,
    TemplateLibrary,
    TemplateRecord,
    library_for_build,
    load_library,
    pocket_around,
    shipped_library_path,
)
from ligfit.templates.search import (
    LigandMatch,
    PocketMatch,
    TemplateMatch,
    TemplateOptions,
    candidates_by_fingerprint,
    common_substructure,
    find_templates,
    match_pocket,
)
from ligfit.templates.sources import TemplateSource, build_library, parse_source, read_templates
from ligfit.templates.transplant import SEED_PREFIX, TemplateSeeds, embed_on_core, seeds_for_build, template_seeds, transplant

__all__ = [
    "FORMAT_VERSION",
    "SEED_PREFIX",
    "LigandMatch",
    "Pocket",
    "PocketMatch",
    "TemplateLibrary",
    "TemplateLibraryError",
    "TemplateMatch",
    "TemplateOptions",
    "TemplateRecord",
    "TemplateSeeds",
    "TemplateSource",
    "TemplateSourceError",
    "build_library",
    "candidates_by_fingerprint",
    "common_substructure",
    "embed_on_core",
    "find_templates",
    "library_for_build",
    "load_library",
    "match_pocket",
    "parse_source",
    "pocket_around",
    "read_templates",
    "seeds_for_build",
    "shipped_library_path",
    "template_seeds",
    "transplant",
]
