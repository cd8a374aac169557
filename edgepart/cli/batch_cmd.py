"""`edgepart batch jobs.toml`: every model on every deployment, profile -> plan -> compile -> verify."""

from __future__ import annotations

from typing import Any

import click

from edgepart import batch
from edgepart.cli import text
from edgepart.cli.output import OutputOptions, emit, output_options
from edgepart.errors import CheckFailedError


@click.command("batch")
@click.argument("jobs_file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Where the jobs' folders go (default: the jobs file's [batch].out, else 'batch' beside it).")
@click.option("--parallel", type=int, help="Jobs at once (default: the jobs file's [batch].parallel, else 2).")
@output_options
def batch_command(out: OutputOptions, jobs_file: str, out_dir: str | None, parallel: int | None) -> None:
    """Run profile, plan, compile and verify for every model on every deployment of JOBS_FILE, in
    parallel; jobs that succeeded before from the same files are skipped. Exit code 0 when every job
    succeeded, 1 when one failed (each job's own exit code is in the summary)."""
    jobs = batch.load(jobs_file, out_dir, parallel)

    def progress(job: batch.Job, outcome: str) -> None:
        if not out.quiet:
            click.echo(f"{job.name}: {outcome}", err=True)

    summary = batch.run(jobs, progress)
    emit(out, summary, render)
    if summary["exit_code"]:
        failed = [job for job in summary["jobs"] if job["exit_code"]]
        first = failed[0]
        raise CheckFailedError(f"{len(failed)} of {len(summary['jobs'])} jobs failed; first: {first['name']} at "
                               f"{first['failed_stage']} (exit {first['exit_code']}): {first['error']}")


def render(summary: dict[str, Any]) -> str:
    rows = [(job["name"], job["outcome"], job["exit_code"], job["failed_stage"] or "-",
             f"{job['seconds']:.1f} s", (job["error"] or "")[:80]) for job in summary["jobs"]]
    counts = summary["counts"]
    return "\n".join([text.table(["job", "outcome", "exit", "failed at", "time", "error"], rows, right=(2, 4)),
                      f"{counts['done']} done, {counts['skipped']} skipped (done before), {counts['failed']} failed; "
                      f"folders in {summary['out']}"])
