"""Shared fixtures. The SLURM cluster fixture lives in support/slurm_cluster.py."""

pytest_plugins = ["support.slurm_cluster", "support.slurm_two_nodes", "support.slurm_memcap"]
