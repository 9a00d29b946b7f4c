"""Train the residue-type classifier (:mod:`ligfit.backbone.residue_types`) on simulated maps of the pockets.

    nice -n 19 python -m ligfit.backbone.train_residue_types --out .ligfit-data/residue-types
    python -m ligfit.backbone.train_residue_types --out .ligfit-data/residue-types --install

Uses the backbone network's split (``ligfit/backbone/weights/split.json``: by PDB ID and sequence
family), so the test pockets and the real maps' proteins never enter training. Each training
pocket is simulated ``--maps-per-entry`` times at resolutions drawn from 2–4.5 Å with the
backbone network's degradations (:func:`ligfit.backbone.data.simulated_map`), and side chains
weakened as cryo-EM maps show them: B raised towards each side chain's tip by up to 80 Å², and by
up to 60 Å² more on Asp/Glu carboxyls (:func:`ligfit.backbone.data.weakened_side_chains`). The residues'
backbones are made the way the tracer makes them: Cα jittered by the trace's typical error, N and
C placed from the jittered Cα by the peptide table. Validation pockets are simulated at 2.5, 3,
3.5 and 4 Å. Writes ``residue_types.pt`` + ``residue_types.json`` (config, split hash, scores)
into ``--out``; ``--install`` copies them into ``ligfit/backbone/weights/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from ligfit import io
from ligfit.backbone import contract, data, geometry
from ligfit.backbone.residue_types import FEATURE_VERSION, FORMAT, WEIGHTS_DIR, ResidueTypeConfig, ResidueTypeNet, residue_features
from ligfit.backbone.train import TRAINING_PACKAGES
from ligfit.backbone.weights import sha256
from ligfit.runtime import versions

log = logging.getLogger("ligfit.backbone.train_residue_types")

VALIDATION_RESOLUTIONS = (2.5, 3.0, 3.5, 4.0)


@dataclass(frozen=True)
class TrainConfig:
    """Options recorded beside the weights."""

    net: ResidueTypeConfig = ResidueTypeConfig()
    # the backbone network's degradations, and side chains weakened as in cryo-EM maps (EMD-3488: sequence match after
    # threading 0.71 with the earlier MLP, 0.74 with the shipped CNN; see docs/benchmarks.md)
    augmentation: data.Augmentation = data.Augmentation(side_chain_b=(0.0, 80.0), acid_damage_b=(0.0, 60.0))
    maps_per_entry: int = 10
    position_noise: float = 0.45  # Å per axis on Cα (traced Cα RMSD is ~0.75 Å)
    epochs: int = 6
    batch: int = 512
    learning_rate: float = 2e-3  # the peak of a one-cycle schedule over all steps
    weight_decay: float = 1e-2
    seed: int = 0


def traced_like_backbone(residues: data.ResidueTable, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, ...]:
    """N, Cα, C (each (r, 3)) as the tracer would give them: jittered Cα, N and C from the peptide table per fragment."""
    ca = residues.ca + rng.normal(0.0, noise, residues.ca.shape)
    n, c = residues.n + (ca - residues.ca), residues.c + (ca - residues.ca)  # lone residues: the true frame, moved
    follows = data.peptide_bonded(residues.c, residues.n) & (residues.chain[1:] == residues.chain[:-1])
    starts = np.concatenate([[0], np.flatnonzero(~follows) + 1, [len(ca)]])
    table = geometry.peptide_table()
    for start, end in zip(starts[:-1], starts[1:]):
        if end - start >= 2 and np.all(np.isfinite(ca[start:end])):
            n[start:end], c[start:end], _ = table.place(ca[start:end])
    return n, ca, c


def entry_examples(
    source: data.ExampleSource, entry: str, resolution: float, rng: np.random.Generator, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Features and residue-type labels of one simulated map of ``entry``."""
    structure, residues = source.model(entry)
    density = data.simulated_map(structure, resolution, rng, source.augmentation)
    density = contract.to_network_grid(density)
    density = density.with_values(contract.normalise(density.values)[0])
    n, ca, c = traced_like_backbone(residues, rng, noise)
    usable = (residues.aa >= 0) & np.all(np.isfinite(np.concatenate([n, ca, c], axis=1)), axis=1)
    return residue_features(density, n[usable], ca[usable], c[usable]), residues.aa[usable]


def make_set(source: data.ExampleSource, entries: list[str], resolutions: list[float], rng, noise: float, label: str):
    features, labels, at = [], [], []
    started = time.perf_counter()
    for index, entry in enumerate(entries):
        for resolution in resolutions:
            resolution = float(rng.uniform(*source.augmentation.resolution)) if resolution is None else resolution
            x, y = entry_examples(source, entry, resolution, rng, noise)
            features.append(x)
            labels.append(y)
            at.append(np.full(len(y), resolution))
        if (index + 1) % 50 == 0:
            log.info("%s: %d/%d pockets (%.0f s)", label, index + 1, len(entries), time.perf_counter() - started)
    return np.concatenate(features), np.concatenate(labels), np.concatenate(at)


@torch.no_grad()
def scores(model: ResidueTypeNet, features: np.ndarray, labels: np.ndarray, resolutions: np.ndarray) -> dict[str, float]:
    model.eval()
    logits = model(torch.from_numpy(features))
    model.train()
    truth = torch.from_numpy(labels)
    top3 = logits.topk(3, dim=1).indices
    right = (logits.argmax(1) == truth).numpy()
    result = {
        "loss": float(functional.cross_entropy(logits, truth)),
        "accuracy": float(right.mean()),
        "top3_accuracy": float((top3 == truth[:, None]).any(1).float().mean()),
    }
    for resolution in sorted(set(resolutions.tolist())):
        result[f"accuracy_{resolution:g}A"] = float(right[resolutions == resolution].mean())
    return result


def train(root: Path, out: Path, config: TrainConfig) -> dict:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    split = data.read_split(WEIGHTS_DIR / "split.json")
    source = data.ExampleSource(root, split.entries("train"), augmentation=config.augmentation)
    started = time.perf_counter()
    x_train, y_train, _ = make_set(source, split.entries("train"), [None] * config.maps_per_entry, rng, config.position_noise, "train")
    validation_source = data.ExampleSource(root, split.entries("validation"), augmentation=config.augmentation)
    x_val, y_val, r_val = make_set(
        validation_source, split.entries("validation"), list(VALIDATION_RESOLUTIONS), rng, config.position_noise, "validation"
    )
    log.info("%d training and %d validation residues (%.0f s)", len(y_train), len(y_val), time.perf_counter() - started)

    model = ResidueTypeNet(config.net)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(y_train) // config.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=steps)
    features, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(config.seed)
    best, best_state, best_epoch = None, None, -1
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), config.batch):
            batch = order[start : start + config.batch]
            loss = functional.cross_entropy(model(features[batch]), labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        measured = scores(model, x_val, y_val, r_val)
        log.info("epoch %d: validation %s", epoch + 1, {k: round(v, 3) for k, v in measured.items()})
        if best is None or measured["loss"] < best["loss"]:
            best, best_epoch = measured, epoch + 1
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "residue_types.pt"
    # Shipped as float16 (half the size); the recorded scores are those of the rounded weights.
    torch.save({name: value.half() for name, value in best_state.items()}, weights)
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    best = scores(model, x_val, y_val, r_val)
    record = {
        "format": FORMAT,
        "feature_version": FEATURE_VERSION,
        "net": asdict(config.net),
        "weights": weights.name,
        "sha256": sha256(weights),
        "training": {
            "config": asdict(config),
            "split": {"file": "split.json (the backbone network's)", "sha256": split.sha256},
            "residues": {"train": int(len(y_train)), "validation": int(len(y_val))},
            "best_epoch": best_epoch,
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "command": " ".join(sys.argv),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "versions": versions(TRAINING_PACKAGES),
        },
        "validation": {k: round(v, 4) for k, v in best.items()},
    }
    io.write_text(out / "residue_types.json", json.dumps(record, indent=2) + "\n")
    return record


def install(out: Path, destination: Path = WEIGHTS_DIR) -> None:
    for name in ("residue_types.pt", "residue_types.json"):
        shutil.copyfile(out / name, destination / name)


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m ligfit.backbone.train_residue_types", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="unpacked shared data (default: $LIGFIT_DATA)")
    parser.add_argument("--out", type=Path, default=Path(".ligfit-data/residue-types"))
    parser.add_argument("--maps-per-entry", type=int, default=defaults.maps_per_entry)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--kind", choices=("cnn", "mlp"), default=defaults.net.kind, help="classifier: 3D CNN (default) or MLP")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--install", action="store_true", help="copy the trained weights into ligfit/backbone/weights/ and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.install:
        install(args.out)
        log.info("installed %s into %s", args.out / "residue_types.pt", WEIGHTS_DIR)
        return 0
    torch.set_num_threads(args.threads)
    root = data.data_root(args.data)
    net = ResidueTypeConfig(kind=args.kind)
    config = TrainConfig(net=net, maps_per_entry=args.maps_per_entry, epochs=args.epochs, seed=args.seed)
    record = train(root, args.out, config)
    log.info("validation: %s", record["validation"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
