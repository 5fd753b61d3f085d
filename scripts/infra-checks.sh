#!/usr/bin/env bash
# Offline checks of everything that packages and delivers the server: the Dockerfile,
# docker-compose.yml, the GitHub workflows and Dependabot, the shell scripts, the crate
# graph (cargo deny: bans, licenses, sources), and the packaging consistency tests
# (tests/infra). No container engine and no network beyond the package registries: the
# linters come from a cached virtual environment (scripts/checks/venv.sh) and run on the
# files alone. Every check runs; the script fails when any of them found something.
#   SUMA_AUTH_BIN   the server binary the consistency tests ask (built when unset)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/checks/venv.sh
source scripts/checks/venv.sh
export TRIVY_CACHE_DIR="${SUMA_TOOLS_DIR:-$HOME/.cache/suma-auth}/trivy"

if [ -z "${SUMA_AUTH_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/suma-auth/target}"
  cargo build --quiet --bin suma-auth
  export SUMA_AUTH_BIN="$CARGO_TARGET_DIR/debug/suma-auth"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=()
check() {
  local name="$1"
  shift
  echo "--- $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed+=("$name")
    echo "FAILED: $name"
  fi
}

# .env.example with a placeholder for every (deliberately empty) secret: compose's
# `${VAR:?}` refuses to render without them.
sed -E 's/^([A-Z_][A-Z0-9_]*)=$/\1=placeholder/' .env.example >"$work/compose.env"

shell_scripts=(scripts/test.sh .ci/run scripts/infra-checks.sh scripts/checks/*.sh deploy/compose/*.sh)

check "hadolint Dockerfile" hadolint Dockerfile
check "shellcheck scripts" shellcheck "${shell_scripts[@]}"
check "actionlint workflows" actionlint -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
check "yamllint" yamllint --strict .github docker-compose.yml .yamllint
check "docker-compose config" docker-compose --env-file "$work/compose.env" -f docker-compose.yml config --quiet
# checkov has no compose framework: the compose files get its secrets scan. The wrapper
# also fails when checkov skipped a file (it drops workflows its schema rejects).
check "checkov Dockerfile, compose" python scripts/checks/checkov_scan.py Dockerfile -- \
  --skip-download --framework dockerfile secrets \
  -f Dockerfile -f docker-compose.yml -f .env.example \
  -f deploy/compose/gen-certs.sh -f deploy/compose/dev-env.sh -f deploy/compose/pg_hba.conf
check "checkov workflows" python scripts/checks/checkov_scan.py .github/workflows/*.yml -- \
  --skip-download --framework github_actions secrets -d .github
check "trivy config Dockerfile" trivy config --quiet --skip-check-update --table-mode detailed --exit-code 1 Dockerfile
check "trivy secrets" trivy fs --quiet --scanners secret --table-mode detailed --exit-code 1 \
  --skip-dirs target --skip-dirs data --skip-dirs .git .
check "cargo deny (bans, licenses, sources)" cargo deny --locked check bans licenses sources
check "packaging consistency tests" python -m unittest discover -s tests/infra -p 'test_packaging.py' -v
if [ -f scripts/checks/deploy.sh ]; then
  check "deploy checks" bash scripts/checks/deploy.sh
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "infra checks failed: ${failed[*]}"
fi
echo "infra: $passed passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
