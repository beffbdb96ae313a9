"""Tiled against naive text x video scoring: throughput and peak memory per method, in one run.

    python run.py --bench similarity [--bench-sizes 1000,5000] [--bench-methods xclip,drl]
    python -m benchmarks.similarity [--sizes 1000,5000] [--methods ...] [--width 512] [--out FILE]

For each method (EMCL-Net, CLIP4Clip meanP, X-CLIP, DRL with WTI, HMMC, CLIP2Video: the real
heads with random weights, width 512, 12 frames, 32 words by default) and each size N, N random
texts are scored against N random videos (features in the layout of the method's own encoders,
each item prepared once by the method's ``prepare_text``/``prepare_video``), every case in a
fresh process:

- tiled: `blocked_similarity` with the method's evaluation block (``eval.block_size`` of its yaml);
- naive: the method's scorer called once on the full feature sets, so its whole
  (texts x videos x words x frames)-style intermediate exists at once. It is skipped, with the
  reason, when its estimated peak exceeds ``--naive-ram-fraction`` of the machine's RAM;
- tile: the first block alone, which measures what one tile costs.

Peak memory is the resident high-water mark during the scoring minus the resident size just
before it (interpreter, model and features excluded). Where both ran, the largest |tiled - naive|
is reported: the two must agree except for EMCL-Net, whose EM step mixes the rows of a block, so
its naive case is one block of everything and differs by design. Cases run in processes forked
from a server that imported torch once, so a case costs no import time.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.table import Table

from benchmarks.fresh_process import case_context, positive, positive_list, run_in_fresh_process
from harness.console import report_console
from harness.results import write_json

METHODS = {
    "emcl": "EMCL-Net",
    "clip4clip": "CLIP4Clip (meanP)",
    "xclip": "X-CLIP",
    "drl": "DRL (WTI)",
    "hmmc": "HMMC",
    "clip2video": "CLIP2Video",
}
# A 5k x 5k token x frame case takes 8-15 min alone on 2 cores, so by default sizes above
# ALL_METHODS_UP_TO run only X-CLIP (the largest per-pair intermediate: an L x F matrix and its
# softmax temporaries) and HMMC (frame-level, cheap, and its naive case still fits).
ALL_METHODS_UP_TO = 1000
LARGE_METHODS = ("xclip", "hmmc")
# float32 values per (text, video) pair alive at once inside one scorer call, from words L,
# frames F and width D: the basis of the naive memory estimate. Read from the code; the naive
# peaks measured at 256 and 1000 (D=512, L=32, F=12) were 5.1-5.3 D, 4.1-4.2 LF, 3.0-3.1 LF
# (beyond the working copy of the features) and under 2 F.
PAIR_FLOATS = {
    "emcl": lambda L, F, D: 5 * D,  # pooled videos, [pooled; texts], EM reconstruction, output
    "xclip": lambda L, F, D: 5 * L * F,  # the L x F similarities and their softmax temporaries
    "drl": lambda L, F, D: 3 * L * F,  # the similarities and their two masked products
    "hmmc": lambda L, F, D: 3 * F,  # frame cosines and the top-k values and indices
    "clip4clip": lambda L, F, D: 1,  # one cosine per pair
    "clip2video": lambda L, F, D: 2,  # the global and the TAB cosines
}
WORKER_MODULE = "benchmarks.similarity_case"
DEFAULT_OUT = Path("runs/bench/similarity.json")
MIB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="benchmarks.similarity", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes",
        type=positive_list("1000,5000"),
        default=[1000, 5000],
        help="N of each N x N case (1000,5000)",
    )
    parser.add_argument(
        "--methods",
        type=_method_list,
        help=f"methods at every size (default: all of {','.join(METHODS)} up to "
        f"{ALL_METHODS_UP_TO}, only {','.join(LARGE_METHODS)} above)",
    )
    parser.add_argument(
        "--width", type=_width, default=512, help="feature width D (a multiple of 8: 512)"
    )
    parser.add_argument("--words", type=positive, default=32, help="tokens per text L (32)")
    parser.add_argument("--frames", type=positive, default=12, help="frames per video F (12)")
    parser.add_argument(
        "--block", type=positive, help="tile side (default: each method's eval.block_size)"
    )
    parser.add_argument(
        "--threads",
        type=positive,
        help="torch threads per case (default: torch's, i.e. OMP_NUM_THREADS or every core)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--naive-ram-fraction",
        type=float,
        default=0.5,
        help="skip a naive case whose estimated peak exceeds this share of RAM (0.5)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"json file ({DEFAULT_OUT})")
    return parser.parse_args(argv)


def _width(text: str) -> int:
    value = positive(text)
    if value % 8:
        raise argparse.ArgumentTypeError(f"expected a multiple of 8 (HMMC's 8 heads), got {value}")
    return value


def _method_list(text: str) -> list[str]:
    names = text.split(",")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}"
        )
    return names


def plan(sizes: list[int], methods: list[str] | None) -> list[tuple[str, int]]:
    """(method, size) cases in run order: ``methods`` at every size, or the default plan."""
    cases = []
    for size in sizes:
        chosen = methods or (list(METHODS) if size <= ALL_METHODS_UP_TO else LARGE_METHODS)
        cases += [(method, size) for method in chosen]
    return cases


def naive_estimate(method: str, size: int, args: argparse.Namespace, features: int) -> int:
    """Estimated peak bytes of a naive case: every pair's intermediates at once, the matrix, and
    one working copy of the features (scorers normalise or project their inputs)."""
    per_pair = PAIR_FLOATS[method](args.words, args.frames, args.width) + 1
    return 4 * size * size * per_pair + features


def total_ram() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def measure(
    method: str, size: int, args: argparse.Namespace, folder: Path, context: Any
) -> dict[str, Any]:
    """The tiled, tile and naive records of one (method, size), summarised."""
    settings = {
        "method": method,
        "size": size,
        "width": args.width,
        "words": args.words,
        "frames": args.frames,
        "block": args.block,
        "threads": args.threads,
        "seed": args.seed,
        "matrix": str(folder / f"{method}-{size}-tiled.pt"),
    }

    def run(mode: str) -> dict[str, Any]:
        record = str(folder / f"{method}-{size}-{mode}.json")
        return run_in_fresh_process(
            WORKER_MODULE, {**settings, "mode": mode, "record": record}, context
        )

    tiled = run("tiled")
    if "error" in tiled:
        return summarise(method, size, tiled, {}, {"skipped": "the tiled case failed"})
    tile = run("tile")
    estimate = naive_estimate(method, size, args, tiled["features_bytes"])
    ram = total_ram()
    if estimate > args.naive_ram_fraction * ram:
        naive = {
            "skipped": f"estimated peak {estimate / 2**30:.1f} GiB exceeds "
            f"{args.naive_ram_fraction:.0%} of {ram / 2**30:.1f} GiB RAM"
        }
    else:
        naive = run("naive")
    naive["estimate_bytes"] = estimate
    Path(settings["matrix"]).unlink(missing_ok=True)
    return summarise(method, size, tiled, tile, naive)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """The json part of one case's record: seconds (per run), pairs/s, runs timed, MiB, or why it
    did not run."""
    keys = ("wall_s", "pairs_per_s", "runs", "error", "skipped")
    out = {k: record[k] for k in keys if k in record}
    for key in ("peak_bytes", "estimate_bytes"):
        if key in record:
            out[key.removesuffix("bytes") + "mib"] = record[key] / MIB
    return out


def summarise(
    method: str,
    size: int,
    tiled: dict[str, Any],
    tile: dict[str, Any],
    naive: dict[str, Any],
) -> dict[str, Any]:
    """One result row: each case's numbers, the shared sizes, and the tiled/naive ratios."""
    row: dict[str, Any] = {"method": method, "label": METHODS[method], "size": size}
    row |= {"tiled": _public(tiled), "tile": _public(tile), "naive": _public(naive)}
    if "error" in tiled:
        return row
    row |= {
        "block": tiled["block"],
        "threads": tiled["threads"],
        "features_mib": tiled["features_bytes"] / MIB,
        "matrix_mib": tiled["matrix_bytes"] / MIB,
        "same_scores_expected": tiled["same_scores_expected"],
    }
    if "peak_bytes" in tile:
        # How many tiles' worth the tiled peak holds beyond the one final matrix.
        beyond = tiled["peak_bytes"] - tiled["matrix_bytes"]
        row["tiles_beyond_matrix"] = beyond / tile["peak_bytes"] if tile["peak_bytes"] else None
    if "pairs_per_s" in naive:
        row["speed_ratio"] = tiled["pairs_per_s"] / naive["pairs_per_s"]
        row["peak_ratio"] = (
            tiled["peak_bytes"] / naive["peak_bytes"] if naive["peak_bytes"] > 0 else None
        )
        row["max_abs_diff"] = naive.get("max_abs_diff")
    return row


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": total_ram() / 2**30,
        "torch": version("torch"),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _diff(row: dict[str, Any]) -> str:
    diff = _fmt(row.get("max_abs_diff"), ".0e")
    return diff if row.get("same_scores_expected", True) else diff + "*"


# The two printed tables: (title, [(column, cell of a row)]).
TABLES = (
    (
        "throughput",
        [
            ("tiled s", lambda r: _fmt(r["tiled"].get("wall_s"), ".2f")),
            ("tiled pairs/s", lambda r: _fmt(r["tiled"].get("pairs_per_s"), ",.0f")),
            ("naive s", lambda r: _fmt(r["naive"].get("wall_s"), ".2f")),
            ("naive pairs/s", lambda r: _fmt(r["naive"].get("pairs_per_s"), ",.0f")),
            ("tiled/naive speed", lambda r: _fmt(r.get("speed_ratio"), ".2f")),
            ("max diff", _diff),
        ],
    ),
    (
        "peak memory above the features, MiB",
        [
            ("tiled", lambda r: _fmt(r["tiled"].get("peak_mib"), ",.1f")),
            ("naive", lambda r: _fmt(r["naive"].get("peak_mib"), ",.1f")),
            ("tiled/naive", lambda r: _fmt(r.get("peak_ratio"), ".3f")),
            ("one tile", lambda r: _fmt(r["tile"].get("peak_mib"), ",.1f")),
            ("matrix", lambda r: _fmt(r.get("matrix_mib"), ",.1f")),
            ("features", lambda r: _fmt(r.get("features_mib"), ",.1f")),
        ],
    ),
)


def print_tables(rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """The rich tables of ``rows``, then the cases that were skipped or failed."""
    threads = next((row["threads"] for row in rows if "threads" in row), "?")
    shape = (
        f"D={settings['width']}, L={settings['words']}, F={settings['frames']}, {threads} thread(s)"
    )
    console = report_console()
    for title, columns in TABLES:
        table = Table(title=f"Tiled vs naive similarity: {title} ({shape})")
        table.add_column("method")
        table.add_column("N", justify="right")
        for name, _ in columns:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(row["label"], f"{row['size']:,}", *(cell(row) for _, cell in columns))
        console.print(table)
    print(
        "peak: resident high-water mark during the scoring minus the resident size just before "
        "it, each case in a fresh process; one tile: the first block scored alone"
    )
    if any(not row.get("same_scores_expected", True) for row in rows):
        print("* EMCL-Net's EM step mixes a block: naive (one block of everything) differs")
    for row in rows:
        for case in ("tiled", "tile", "naive"):
            reason = row[case].get("error") or row[case].get("skipped")
            if reason:
                print(f"{row['label']} {row['size']} {case}: {reason}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the json; returns the exit status."""
    args = parse_args(argv)
    context = case_context(WORKER_MODULE)
    settings = {
        key: getattr(args, key)
        for key in ("width", "words", "frames", "block", "threads", "seed", "naive_ram_fraction")
    }
    settings["block"] = settings["block"] or "eval.block_size of each method"
    settings["threads"] = settings["threads"] or "torch default"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with TemporaryDirectory(prefix="similarity-bench-") as scratch:
        rows = [
            measure(method, size, args, Path(scratch), context)
            for method, size in plan(args.sizes, args.methods)
        ]
    result = {
        "settings": settings,
        "machine": machine() | {"load_1min_before": load_before},
        "total_s": time.perf_counter() - start,
        "rows": rows,
    }
    result["machine"]["load_1min_after"] = os.getloadavg()[0]
    write_json(args.out, result)
    print_tables(rows, settings)
    print(f"written to {args.out} in {result['total_s']:.0f} s")
    failed = any("error" in row[case] for row in rows for case in ("tiled", "tile", "naive"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
