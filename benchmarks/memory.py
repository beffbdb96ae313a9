"""Peak memory of one training step against the gradient cache's chunk (``train.micro_batch``).

    python run.py --bench memory [--bench-encoder tiny|base] [--bench-sizes 128]
                                 [--bench-micro 64,32,16] [--bench-out FILE]
    python -m benchmarks.memory [--encoder tiny] [--batch 128] [--micro ...] [--frames 8]

For a global batch B on one process, one training step of a retrieval method (EMCL-Net by
default; random weights) runs without the cache and with each micro-batch, every case in a fresh
process. Each reports the step's wall time and the resident peak above the resident size before
the step (model, batch and gradient buffers excluded: what is left is the activations and the
temporaries of the step), and, against the full-batch case, the peak ratio and the time ratio
(the cost of the recomputed forward). The default micro-batches are B/2, B/4 and B/8.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.table import Table

from benchmarks.fresh_process import case_context, positive, positive_list, run_in_fresh_process
from harness.console import report_console
from harness.results import write_json

WORKER_MODULE = "benchmarks.memory_case"
DEFAULT_OUT = Path("runs/bench/memory.json")
ENCODER_NAMES = ("tiny", "base")
MIB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(prog="benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=ENCODER_NAMES, default="tiny", help="(tiny)")
    parser.add_argument("--batch", type=positive, default=128, help="global batch B (128)")
    parser.add_argument(
        "--micro", type=positive_list("64,32,16"), help="micro-batches (B/2,B/4,B/8)"
    )
    parser.add_argument("--frames", type=positive, default=8, help="frames per video (8)")
    parser.add_argument("--method", default="emcl", help="retrieval method (emcl)")
    parser.add_argument("--threads", type=positive, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"json file ({DEFAULT_OUT})")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, context: Any, folder: Path) -> list[dict[str, Any]]:
    """The full-batch case, then each micro-batch case, with ratios to the full batch."""
    micros = args.micro or [m for m in (args.batch // 2, args.batch // 4, args.batch // 8) if m]
    rows = []
    for micro in [None, *micros]:
        case = {
            "method": args.method,
            "encoder": args.encoder,
            "batch": args.batch,
            "micro": micro,
            "frames": args.frames,
            "threads": args.threads,
            "record": str(folder / f"{micro}.json"),
        }
        record = run_in_fresh_process(WORKER_MODULE, case, context)
        row = {"micro_batch": micro, **record}
        if "peak_bytes" in record:
            row["peak_mib"] = record["peak_bytes"] / MIB
            if rows and "peak_bytes" in rows[0]:
                row["peak_ratio"] = record["peak_bytes"] / rows[0]["peak_bytes"]
                row["time_ratio"] = record["wall_s"] / rows[0]["wall_s"]
                row["loss_diff"] = abs(record["loss"] - rows[0]["loss"])
        rows.append(row)
    return rows


def print_table(result: dict[str, Any]) -> None:
    """The rows as a console table."""
    table = Table(
        title=f"one training step of {result['method']}, {result['encoder']} encoder, "
        f"global batch {result['batch']}, {result['frames']} frames"
    )
    for column in ("micro_batch", "peak MiB", "x full peak", "wall s", "x full time"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        if "error" in row:
            table.add_row(str(row["micro_batch"]), row["error"], "", "", "")
            continue
        table.add_row(
            "full" if row["micro_batch"] is None else str(row["micro_batch"]),
            f"{row['peak_mib']:.0f}",
            f"{row['peak_ratio']:.2f}" if "peak_ratio" in row else "1",
            f"{row['wall_s']:.2f}",
            f"{row['time_ratio']:.2f}" if "time_ratio" in row else "1",
        )
    report_console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; writes the json and prints the table. Exit status 0."""
    args = parse_args(argv)
    context = case_context(WORKER_MODULE)
    with TemporaryDirectory() as tmp:
        rows = measure(args, context, Path(tmp))
    result = {
        "method": args.method,
        "encoder": args.encoder,
        "batch": args.batch,
        "frames": args.frames,
        "rows": rows,
    }
    write_json(args.out, result)
    print_table(result)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
