"""bench.png reads at its saved size: nothing cut off, legends of at least 9 pt below the panels, where they
cover neither the curves nor the SRAM line (the figure needs no board: made-up rows)."""

from __future__ import annotations

from pathlib import Path

from pyodl.experiments.plots import layout_problems, pyplot
from pyodl.model.architecture import PAPER_INPUT_LENGTHS, PAPER_TL_LAYERS, paper_architecture
from pyodl.resources.bench import KEPT_MARKER, PAPER_TABLE_III, BenchRow, bench_figure, plot, results_markdown
from pyodl.resources.estimate import estimate


def _rows() -> list[BenchRow]:
    rows = []
    for t in (20, 40, 60, 80, 100):
        for mode, ram, instructions in (("full", 90_000, 25_000), ("tl", 45_000, 9_500)):
            paper = PAPER_TABLE_III.get((t, mode))
            rows.append(BenchRow(t, mode, ram + 400 * t, ram + 400 * t, 60_000, 60_000, instructions * t,
                                 instructions * t * 1.01, 1.3 * instructions * t, 1.3 * instructions * t, 9000 * t,
                                 100_000, 160_000, 600.0 + 27 * t, 528, 32, paper[0] if paper else None,
                                 paper[1] if paper else None, paper[2] if paper else None, 150.0))
    return rows


def test_bench_png_reads_well(tmp_path: Path) -> None:
    fig = bench_figure(_rows())
    try:
        assert layout_problems(fig) == []
        ram, instructions = fig.axes
        assert ram.get_ylabel() == "SRAM (KiB)" and "per sample" in instructions.get_ylabel()
        for ax in (ram, instructions):
            legend = ax.get_legend()
            # Below its panel: the legend's top is under the axes' bottom, so it covers no curve.
            assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
    finally:
        pyplot().close(fig)
    plot(_rows(), tmp_path / "bench.png")
    assert (tmp_path / "bench.png").stat().st_size > 0 and not pyplot().get_fignums()


def _results_rows() -> list[dict[str, str]]:
    """The rows of `pyodl bench`'s table in benchmarks/RESULTS.md, by column name."""
    text = (Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md").read_text()
    lines = [line for line in text.partition(KEPT_MARKER)[0].splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[1:] if not line.startswith("|---")]


def test_results_md_ram_rows_are_what_the_estimator_and_the_linker_give_today() -> None:
    """benchmarks/RESULTS.md once showed 94.3 KiB at T=40 Full while a fresh bench measured 109.5: its RAM
    rows must be today's estimate (exact to the linker, tests/resources/test_estimate.py), so a change of
    the memory plan fails here until `pyodl bench --out benchmarks` is run again."""
    rows = _results_rows()
    assert {(int(r["T"]), r["mode"]) for r in rows} == {(t, m) for t in PAPER_INPUT_LENGTHS for m in ("full", "tl")}
    for r in rows:
        t, mode = int(r["T"]), r["mode"]
        est = estimate(paper_architecture(t, 3, 6), None if mode == "full" else PAPER_TL_LAYERS, 32, "paper")
        assert r["RAM est."] == r["RAM linked"] == f"{est.ram_total / 1024:.1f} KiB", (t, mode)


def test_readme_states_the_deepest_stack_use_the_benchmarks_measured() -> None:
    root = Path(__file__).resolve().parents[2]
    deepest = max(int(r["stack used"].removesuffix(" B")) for r in _results_rows())
    assert f"the deepest use measured is {deepest} bytes" in (root / "README.md").read_text()


def test_the_table_links_its_plot_only_when_the_plot_is_written() -> None:
    """`pyodl bench` without --out printed a link to a bench.png it never wrote."""
    assert "bench.png" not in results_markdown(_rows(), "pyodl bench --inputs 20", "abc1234")
    assert "![RAM and instructions per input size](bench.png)" in results_markdown(
        _rows(), "pyodl bench --out benchmarks", "abc1234", "bench.png")
