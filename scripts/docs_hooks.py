"""MkDocs hooks for the documentation site (``mkdocs.yml`` lists this file under ``hooks``).

The benchmark chart lives where ``make bench`` writes it, ``benchmarks/results/throughput.png``; the benchmark
page includes ``benchmarks/results/results.md`` (which links ``throughput.png``). Rather than keep a copy in
``docs/`` that a new run would leave stale, the chart is added to the site here, next to that page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {"benchmarks/throughput.png": ROOT / "benchmarks" / "results" / "throughput.png"}


def on_files(files: Files, config: Any) -> Files:
    for uri, source in GENERATED.items():
        if not source.is_file():
            raise FileNotFoundError(f"the docs need {source} (run `make bench` to produce it)")
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
