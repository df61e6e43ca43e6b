"""The session SLURM cluster is real: batch jobs run on it and end in the right states."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.slurm_cluster import SlurmCluster, parse_scontrol_record


def submit(cluster: SlurmCluster, script: Path, output: Path) -> str:
    res = cluster.run(
        [
            "sbatch",
            "--parsable",
            f"--partition={cluster.partition}",
            f"--output={output}",
            f"--chdir={script.parent}",
            "--time=1",
            str(script),
        ]
    )
    assert res.returncode == 0, f"sbatch failed: {res.stderr.strip()}\n{cluster.logs()}"
    # --parsable prints "<id>" or "<id>;<cluster>"
    job_id = res.stdout.strip().split(";")[0]
    assert job_id.isdigit(), f"unexpected sbatch output {res.stdout!r}"
    return job_id


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.slurm
def test_batch_job_completes_and_writes_output(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    marker = f"trainwright-marker-{tmp_path.name}"
    script = write_script(tmp_path / "job.sh", f'echo "{marker}"\nhostname\n')
    output = tmp_path / "job.out"

    job_id = submit(slurm_cluster, script, output)
    record = slurm_cluster.wait_job(job_id, timeout=60, poll=0.5)

    assert record["JobState"] == "COMPLETED", f"{record}\n{slurm_cluster.logs()}"
    assert record["ExitCode"] == "0:0"
    assert record["Partition"] == slurm_cluster.partition
    text = output.read_text()
    assert text.splitlines()[0] == marker
    assert slurm_cluster.host in text


@pytest.mark.slurm
def test_failing_job_ends_failed_with_its_exit_code(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "fail.sh", "echo about to fail\nexit 3\n")
    output = tmp_path / "fail.out"

    job_id = submit(slurm_cluster, script, output)
    record = slurm_cluster.wait_job(job_id, timeout=60, poll=0.5)

    assert record["JobState"] == "FAILED", f"{record}\n{slurm_cluster.logs()}"
    assert record["ExitCode"] == "3:0"
    assert "about to fail" in output.read_text()


def test_parse_scontrol_record_keeps_values_with_spaces() -> None:
    line = "JobId=7 JobName=x Reason=None Command=/tmp/a b.sh ExitCode=3:0 Socks/Node=*"
    record = parse_scontrol_record(line)
    assert record["JobId"] == "7"
    assert record["Command"] == "/tmp/a b.sh"
    assert record["ExitCode"] == "3:0"
    assert record["Socks/Node"] == "*"
