"""The sweep's progress as a person watches it: overall counts and each device's current job."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the display only reads events; importing the runner would load numpy for every command
    from farm.run import Event


def plain_table(title: str | None = None, **options) -> Table:
    """A table whose title and cells are shown as they are: names and reasons come from users and devices, and are
    never read as Rich markup."""
    return Table(title=Text(title) if title is not None else None, **options)


def add_plain_row(table: Table, *values: object) -> None:
    table.add_row(*(Text(str(value)) for value in values))


class SweepDisplay:
    """A live table on a terminal; one line per finished job otherwise (CI logs, pipes).

    An event only updates the tallies: the table is drawn at the display's refresh rate, with only the rows the
    terminal has room for, so a farm of a thousand devices costs no more per event than one of four."""

    def __init__(self, sweep_name: str, counts: dict[str, int], console: Console | None = None):
        self.console = console or make_console()
        self.sweep_name = sweep_name
        self.total = sum(counts.values())
        self.finished = counts["done"] + counts["failed"] + counts["skipped"]
        self.current: dict[str, str] = {}
        self.per_device: dict[str, dict[str, int]] = {}
        self._live: Live | None = None

    def __enter__(self) -> "SweepDisplay":
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False, get_renderable=self._render)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def notify(self, event: Event) -> None:
        tally = self.per_device.setdefault(event.device, {"done": 0, "failed": 0})
        if event.state in ("waiting", "cooling", "note"):
            self.current[event.device] = f"{event.state} — {event.detail}"
        elif event.state == "running":
            self.current[event.device] = event.label
        elif event.state in ("done", "failed"):
            tally[event.state] += 1
            self.finished += 1
            self.current[event.device] = ""
        if self._live is None and event.state != "running":
            if event.state in ("waiting", "cooling", "note"):
                line = f"{event.device}: {event.state} — {event.detail}"
            else:
                detail = f": {event.detail}" if event.detail else ""
                line = f"[{self.finished}/{self.total}] {event.device}: {event.label} {event.state}{detail}"
            self.console.print(line, markup=False, highlight=False)
            self.console.file.flush()  # a CI log or a pipe shows each line as it happens

    def _render(self) -> Group:
        """The header, the bar and as many device rows as the terminal shows (devices with failures first), the others
        summed up in one line. Called by the display's refresh thread: the tallies are read from a snapshot, since
        the event loop adds devices meanwhile."""
        devices = sorted(list(self.per_device.items()), key=lambda item: (item[1]["failed"] == 0, item[0]))
        room = max(self.console.size.height - 5, 1)  # header, bar, column names and the line of the others
        shown, others = (devices, []) if len(devices) <= room + 1 else (devices[:room], devices[room:])
        rows = [("device", "current job", "done", "failed")]
        rows += [(device, self.current.get(device) or "-", tally["done"], tally["failed"]) for device, tally in shown]
        if others:
            rows.append((f"{len(others)} more", "", sum(tally["done"] for _, tally in others),
                         sum(tally["failed"] for _, tally in others)))
        # Plain columns, not a rich Table: drawn four times a second, a Table of 45 rows took 25 ms of the
        # coordinator's CPU each time, these lines 2 ms.
        cells = [[str(value).replace("\n", " ") for value in row] for row in rows]
        widths = [max(cell_len(row[column]) for row in cells) for column in range(len(rows[0]))]
        lines = ["  ".join(cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths)).rstrip()
                 for row in cells]
        header = Text(f"sweep {self.sweep_name}: {self.finished}/{self.total} jobs finished")
        return Group(header, ProgressBar(total=max(self.total, 1), completed=self.finished, width=60),
                     Text("\n".join(lines), no_wrap=True, overflow="ellipsis"))


def make_console(stderr: bool = False) -> Console:
    """A console for farm's output: the terminal's width, or a wide fixed one for logs and pipes (no folded rows).
    On stderr when stdout carries something a program reads (--json)."""
    plain = Console(stderr=stderr)
    return plain if plain.is_terminal else Console(width=200, stderr=stderr)


def results_table(rows: list[dict], title: str) -> Table:
    """A sweep's results for the terminal: one row per configuration (farm.report), the figures a person compares
    first (speed, size plain and compressed, accuracy and agreement), the p50 with the half-width of its 95% interval
    over the repeats, and the validity flags. Why a configuration failed or was skipped: `problems` below it."""
    from farm.report import half_width_pct

    table = plain_table(title, title_justify="left")
    for column in ("device", "model", "variant", "delegate", "thr", "rep", "status", "p50 ms", "p90 ms", "init ms",
                   "peak MB", "size KB", "gzip KB", "top-1", "vs fp32", "vs source", "flags"):
        # Every figure keeps its full width; on a narrow terminal the flags give way first.
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=8 if column == "flags" else len(column),
                         justify="left" if column in ("device", "model", "variant", "delegate", "status", "flags")
                         else "right")

    def number(value, digits=2):
        return "-" if value is None else f"{value:.{digits}f}"

    def kb(size):
        return "-" if size is None else f"{size / 1024:.1f}"

    for row in rows:
        p50 = number(row["p50_ms"], 3)
        spread = half_width_pct(row)
        if spread is not None:
            p50 += f" ±{spread:.1f}%"
        # A regression has errors where a classification has top-1 and agreement.
        score = number(row["accuracy"], 3) if row["rmse"] is None else f"rmse {row['rmse']:.3g}"
        source = (number(row["agreement_with_source"], 3) if row["rmse_vs_source"] is None
                  else f"rmse {row['rmse_vs_source']:.3g}")
        add_plain_row(table, row["device"], row["model"], row["variant"], row["delegate"], row["threads"],
                      f"{row['repeats']}/{row['jobs']}", row["status"], p50, number(row["p90_ms"], 3),
                      number(row["init_ms"]), number(row["peak_mb"], 1), kb(row["size_bytes"]), kb(row["gzip_bytes"]),
                      score, number(row["agreement_with_fp32"], 3), source, row["flags"] or "-")
    return table


def problems(rows: list[dict]) -> list[str]:
    """One line per distinct reason configurations failed or were skipped for, with how many: under the table."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        if row["status"] != "done" and row["error"]:
            key = (row["status"], row["error"])
            counts[key] = counts.get(key, 0) + 1
    return [f"{status} ({n}): {reason}" for (status, reason), n in sorted(counts.items(), key=lambda kv: -kv[1])]
