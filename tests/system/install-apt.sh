#!/usr/bin/env bash
# System packages the test suite needs (a real single-node SLURM cluster, see
# tests/support/slurm_cluster.py; and sshd for tests/support/ssh_server.py). Idempotent: does nothing when the commands are present.
# Without root it installs nothing and the SLURM tests skip (or fail when CI=true).
set -euo pipefail

# Debian packages to install; add to this list (and to REQUIRED_COMMANDS) as needs grow.
# iproute2 and util-linux: the two-node cluster's namespaces (tests/support/slurm_two_nodes.py).
# rsync: `cloud push` / `cloud pull` to the loopback sshd that plays a rented instance.
APT_PACKAGES=(slurmctld slurmd slurm-client munge openssh-server openssh-client iproute2 util-linux
    rsync)
# Commands whose presence means the packages above are installed.
REQUIRED_COMMANDS=(sbatch squeue scontrol sinfo slurmctld slurmd munged munge sshd ssh ssh-keygen
    ip nsenter unshare rsync)

missing=()
for cmd in "${REQUIRED_COMMANDS[@]}"; do
    # slurmctld, slurmd and munged live in /usr/sbin, which a non-root PATH may lack.
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
        missing+=("$cmd")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-apt: system packages present (${APT_PACKAGES[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-apt: missing ${missing[*]} and not root: not installing" \
        "${APT_PACKAGES[*]}; the SLURM tests will be skipped"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-apt: missing ${missing[*]} and no apt-get on this machine;" \
        "install ${APT_PACKAGES[*]} by hand or the SLURM tests will be skipped" >&2
    exit 0
fi

echo "install-apt: missing ${missing[*]}; installing ${APT_PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
echo "install-apt: installed ${APT_PACKAGES[*]}"
