"""What a bench run leaves (:class:`BenchRun`), on CUDA (``run``) or without it (``cpu_path``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

NO_GPU = "no GPU: correctness only"


@dataclass
class BenchRun:
    """What a bench run leaves: the JSON document, its files, its claims and what to print.

        ``exit_code`` is 1 when the target's kernel gave a wrong answer or crashed (either path),
        3 when the run asked for needs a GPU and there is none (``--quick``)."""

    data: dict
    json_path: Path
    claims: list = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    renderables: list = field(default_factory=list)
    refused: str = ""   # why the run asked for could not happen (``--quick`` without CUDA): exit 3

    @property
    def exit_code(self) -> int:
        if self.refused:
            return 3
        bad = [r for r in self.data.get("rows", []) if r["candidate"] == "target"
               and r["status"] in ("incorrect", "error")]
        cpu = self.data.get("cpu")
        bad += [r for r in (cpu.get("rows", []) if isinstance(cpu, dict) else [])
                if r.get("status") in ("incorrect", "error")]
        return 1 if bad else 0
