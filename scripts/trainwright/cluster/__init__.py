"""Experiment runs on a cluster: the runs plan, experiment folders, SLURM scripts, launch, monitor.

One module per job: `plan` (runs_plan.md), `status` (runs_status.yaml), `dirs`, `sizing`,
`render` (sbatch text), `slurm` (sbatch/squeue/sacct/scontrol), `local` (the no-SLURM executor),
`launch`, `monitor`, `adapters` (what each trainer needs), `commands` (the `runs` CLI group).
"""
