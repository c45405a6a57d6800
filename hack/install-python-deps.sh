#!/usr/bin/env bash
# Install the project (editable) and its dependencies into the venv whose python is $1.
# Skips the pip run when pyproject.toml and the checkout path are unchanged since the last install.
set -euo pipefail
py="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
stamp="$(dirname "$py")/../.acgs-install-stamp"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16) $root"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$py" -c "import acgs_operator, acgs_workloads, torch, ray, kopf" 2>/dev/null; then
  echo "[acgs setup] Python environment up to date ($(dirname "$(dirname "$py")"))"
  exit 0
fi
echo "[acgs setup] installing acgs[dev] into $(dirname "$(dirname "$py")") (torch and ray are large: minutes on a fresh machine)"
start=$(date +%s)
"$py" -m pip install --progress-bar on -q --upgrade pip setuptools wheel
"$py" -m pip install --progress-bar on -e "$root[dev]"
echo "$want" > "$stamp"
echo "[acgs setup] Python environment ready in $(( $(date +%s) - start ))s"
