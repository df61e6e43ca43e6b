"""Shared fixtures. The SLURM cluster fixtures live in support/slurm_cluster.py,
support/slurm_two_nodes.py and support/slurm_memcap.py."""

from __future__ import annotations

import pytest

pytest_plugins = ["support.slurm_cluster", "support.slurm_two_nodes", "support.slurm_memcap"]

# A test that starts or uses a SLURM cluster is marked `slurm` whatever its file says, so
# `make test` can run those one at a time (the clusters share daemons, ports and cgroups) and
# everything else on two workers.
CLUSTER_FIXTURES = {"slurm_cluster", "slurm_two_nodes", "slurm_memcap_cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slurm)
