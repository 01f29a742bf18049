"""`farm convert`: a model into its variants, cached, with a table of what each is."""
from __future__ import annotations

import sys
from pathlib import Path


def convert(args) -> int:
    from farm.progress import add_plain_row, make_console, plain_table

    from farm.convert import convert_model
    from farm.paths import cache_dir

    variants = convert_model(Path(args.model), args.variants, name=args.name,
                             calibration=Path(args.calibration) if args.calibration else None,
                             calibration_samples=args.calibration_samples, train=args.train,
                             static_shapes=args.static_shapes, cache=cache_dir(),
                             progress=lambda line: print(line, flush=True))
    shapes = ", static shapes" if args.static_shapes else ""
    table = plain_table(f"variants of {args.model} (cached in {cache_dir()}{shapes})", title_justify="left")
    for column in ("variant", "size KB", "gzip KB", "sparsity", "sha256", "input", "output", "ops", "flex", "status"):
        table.add_column(column)
    for v in variants:
        d = v.description or {}
        io = lambda t: f"{t['dtype']}{list(t['shape'])}" if t else "-"  # noqa: E731
        sparsity = f"{d['sparsity']:.0%}" if "sparsity" in d else "-"
        add_plain_row(table, v.kind, f"{v.size / 1024:.1f}", f"{v.gzip_size / 1024:.1f}", sparsity, v.sha256[:12],
                      io((d.get("inputs") or [None])[0]),
                      io((d.get("outputs") or [None])[0]), str(d.get("op_count", "-")),
                      "yes" if d.get("needs_flex") else "no", "ok" if not v.error else f"unusable: {v.error}")
    make_console().print(table)
    failed = [v.kind for v in variants if v.error]
    if failed:
        print(f"farm: {len(failed)} of {len(variants)} variants unusable: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
