#!/usr/bin/env bash
# The Debian packages a real single-node cluster needs (`acgs dev cluster up`, the cluster test tier):
# Docker's engine (builds the images), containerd + runc (the node's runtime), the CNI plugins, debootstrap
# (the images' Debian base), iptables and iproute2. Installs only what is missing; needs root and apt.
set -euo pipefail
packages=(docker.io containerd runc containernetworking-plugins debootstrap iptables iproute2)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[acgs setup] node packages present (${packages[*]})"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "[acgs setup] missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "[acgs setup] installing ${missing[*]}"
apt-get update -q >/dev/null || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "[acgs setup] installed ${missing[*]}"
