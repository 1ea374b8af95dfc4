#!/usr/bin/env bash
# Run a command inside a private network namespace, so tests that open
# sockets cannot reach (or be reached from) the host network.
#
# Usage: scripts/netns-run.sh <command> [args...]
#
# Inside the namespace lo is up, and a veth pair pnr0 (10.99.0.1/24) /
# pnr1 (10.99.0.2/24) is up with both ends in the namespace, which gives ICE
# a non-loopback interface to gather candidates on. A default route points at
# pnr0 (it leads nowhere outside the namespace): Chromium gathers host
# candidates only on the interface of the default route, none without one. The command's exit code
# is propagated. Without namespace support (not root, not Linux, no veth) the
# command runs directly on the host network, with a warning.
#
# PION_NETNS_ACTIVE=1 is exported to the command; if it is already set, the
# command is run as is (no nested namespace).
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 <command> [args...]" >&2
  exit 64
fi

# Re-exec'd copy running inside the fresh namespace: set it up, then run.
if [[ "${PION_NETNS_SETUP:-}" == "1" ]]; then
  unset PION_NETNS_SETUP
  if ! { ip link set lo up &&
         ip link add pnr0 type veth peer name pnr1 &&
         ip addr add 10.99.0.1/24 dev pnr0 &&
         ip addr add 10.99.0.2/24 dev pnr1 &&
         ip link set pnr0 up &&
         ip link set pnr1 up &&
         ip route add default dev pnr0; }; then
    echo "error: $0: setting up lo and veth pnr0/pnr1 in the network namespace failed" >&2
    exit 1
  fi
  export PION_NETNS_ACTIVE=1
  exec "$@"
fi

if [[ "${PION_NETNS_ACTIVE:-}" == "1" ]]; then
  exec "$@"
fi

# Probe in a throwaway namespace: unshare itself, and veth support (the veth
# kernel module may be missing even where unshare works).
reason=""
if [[ "$(uname -s)" != "Linux" ]]; then
  reason="network namespaces need Linux"
elif ! command -v unshare >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  reason="unshare or ip (iproute2) not found"
elif ! unshare -n true >/dev/null 2>&1; then
  reason="cannot create a network namespace (not root?)"
elif ! unshare -n ip link add pnr0 type veth peer name pnr1 >/dev/null 2>&1; then
  reason="cannot create a veth pair in a network namespace"
fi

if [[ -n "$reason" ]]; then
  echo "warning: $reason; tests fall back to the host network" >&2
  exec "$@"
fi

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PION_NETNS_SETUP=1 PION_NETNS_ACTIVE=1 exec unshare -n -- "${BASH:-bash}" "$self" "$@"
