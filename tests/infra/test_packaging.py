"""Packaging consistency: the Dockerfile, docker-compose.yml, the workflows and the README
agree with the server, whose facts come from the binary itself (`suma-auth env --json`,
`suma-auth openapi`, `suma-auth health`), never from reading its source.

Run by scripts/infra-checks.sh with the tools' virtual environment:
    python -m unittest discover -s tests/infra -v
The binary is $SUMA_AUTH_BIN (default: $HOME/.cache/suma-auth/target/debug/suma-auth).
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
WORKFLOWS = ROOT / ".github" / "workflows"
SERVER = "server"  # the compose service that runs suma-auth
MIGRATIONS_INIT_DIR = "/docker-entrypoint-initdb.d"


def binary() -> Path:
    default = Path.home() / ".cache" / "suma-auth" / "target" / "debug" / "suma-auth"
    path = Path(os.environ.get("SUMA_AUTH_BIN") or default)
    if not path.is_file():
        raise AssertionError(
            f"no suma-auth binary at {path}: build it (cargo build) or set SUMA_AUTH_BIN"
        )
    return path


def run_binary(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary()), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


_cache: dict = {}


def server_env_vars() -> dict:
    """name -> catalogue entry, from `suma-auth env --json`."""
    if "env" not in _cache:
        out = run_binary("env", "--json")
        assert out.returncode == 0, f"suma-auth env --json failed: {out.stderr}"
        _cache["env"] = {v["name"]: v for v in json.loads(out.stdout)}
    return _cache["env"]


def openapi_paths() -> set:
    if "openapi" not in _cache:
        out = run_binary("openapi")
        assert out.returncode == 0, f"suma-auth openapi failed: {out.stderr}"
        _cache["openapi"] = set(json.loads(out.stdout)["paths"])
    return _cache["openapi"]


# --- compose -------------------------------------------------------------------------

def tool(name: str) -> str:
    """A tool from the virtual environment this test runs in, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} not found (run through scripts/infra-checks.sh)"
    return found


def env_example() -> dict:
    """NAME -> value of every assignment in .env.example (comments skipped)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        values[name.strip()] = value
    return values


def compose_config(env_file_values: dict) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
        for name, value in env_file_values.items():
            f.write(f"{name}={value}\n")
        env_file = f.name
    try:
        env = {k: v for k, v in os.environ.items() if k not in env_file_values}
        env.pop("COMPOSE_FILE", None)
        return subprocess.run(
            [tool("docker-compose"), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
             "--env-file", env_file, "config", "--format", "json"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
    finally:
        os.unlink(env_file)


def compose() -> dict:
    """The compose model as `docker-compose config` resolves it, with placeholder secrets."""
    if "compose" not in _cache:
        filled = {name: value or f"placeholder-{name.lower()}" for name, value in env_example().items()}
        out = compose_config(filled)
        assert out.returncode == 0, f"docker-compose config failed: {out.stderr}"
        _cache["compose"] = json.loads(out.stdout)
    return _cache["compose"]


def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def server_service() -> dict:
    services = compose()["services"]
    assert SERVER in services, f"compose has no `{SERVER}` service"
    return services[SERVER]


def container_port(mapping) -> int:
    if isinstance(mapping, dict):
        return int(mapping["target"])
    return int(str(mapping).split(":")[-1].split("/")[0])


# --- Dockerfile ----------------------------------------------------------------------

def dockerfile_stages() -> list:
    """[(stage name, [(INSTRUCTION, arguments)])] with continuation lines joined."""
    text = DOCKERFILE.read_text()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = rest.split()[-1] if " AS " in rest.upper() else ""
            stages.append((name, []))
        if stages:
            stages[-1][1].append((instruction, rest.strip()))
    assert stages, "Dockerfile has no FROM"
    return stages


def final_stage() -> list:
    return dockerfile_stages()[-1][1]


def exec_form(argument: str) -> list:
    value = json.loads(argument)
    assert isinstance(value, list), f"not an exec-form array: {argument}"
    return value


def dockerfile_env(stage: list) -> dict:
    env = {}
    for instruction, rest in stage:
        if instruction == "ENV":
            for name, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', rest):
                env[name] = value.strip('"')
    return env


def healthcheck_command(stage: list) -> list:
    checks = [rest for instruction, rest in stage if instruction == "HEALTHCHECK"]
    assert len(checks) == 1, "the runtime stage needs exactly one HEALTHCHECK"
    _, _, command = checks[0].partition("CMD ")
    return exec_form(command.strip())


# --- the tests -----------------------------------------------------------------------

class ComposeEnvironment(unittest.TestCase):
    """Every variable compose sets for the server is one the server reads; every variable
    production requires is set; secrets come from .env, never from the compose file."""

    def test_every_variable_compose_sets_is_read_by_the_server(self):
        known = server_env_vars()
        unknown = sorted(set(server_service().get("environment", {})) - set(known))
        self.assertEqual(unknown, [], "compose sets variables the server does not read")

    def test_every_required_variable_is_set(self):
        environment = server_service().get("environment", {})
        missing = [
            name for name, var in server_env_vars().items()
            if var["required_in_production"]
            and not any(n in environment for n in [name, *var["alternatives"]])
        ]
        self.assertEqual(missing, [], "compose leaves variables unset that production requires")

    def test_secrets_are_interpolated_from_the_env_file(self):
        raw_env = compose_raw()["services"][SERVER].get("environment", {})
        self.assertIsInstance(raw_env, dict, "server environment as a mapping")
        for name, value in raw_env.items():
            if server_env_vars().get(name, {}).get("secret"):
                self.assertRegex(str(value), r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$",
                                 f"{name} is a secret: it must be ${{VAR:?…}} from .env")

    def test_env_example_names_every_required_secret_and_holds_no_value(self):
        text = COMPOSE_FILE.read_text()
        required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
        example = env_example()
        self.assertEqual(sorted(required - set(example)), [], ".env.example lacks variables compose requires")
        filled = {name: value for name, value in example.items() if value}
        self.assertEqual(filled, {}, ".env.example must not carry values (no committed secrets)")

    def test_compose_refuses_to_start_without_the_secrets(self):
        out = compose_config(env_example())
        self.assertNotEqual(out.returncode, 0, "compose accepted empty secrets")
        for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()):
            self.assertIn(name, out.stderr)


class HealthAndPorts(unittest.TestCase):
    """PORT, the exposed and published ports, and the health checks agree with the server."""

    def test_ports_agree(self):
        port = int(server_env_vars()["PORT"]["default"])
        exposed = [int(p.split("/")[0]) for i, rest in final_stage() if i == "EXPOSE" for p in rest.split()]
        self.assertEqual(exposed, [port], "Dockerfile EXPOSE vs the server's PORT default")
        service = server_service()
        port_in_compose = int(service.get("environment", {}).get("PORT", port))
        self.assertEqual(port_in_compose, port, "compose PORT vs the image's EXPOSE")
        published = [container_port(m) for m in service.get("ports", [])]
        self.assertEqual(published, [port], "compose publishes the server's PORT")

    def test_image_and_compose_health_checks_run_suma_auth_health(self):
        stage = final_stage()
        entrypoint = [exec_form(rest) for i, rest in stage if i == "ENTRYPOINT"]
        self.assertEqual(len(entrypoint), 1)
        binary_path = entrypoint[0][0]
        copied_to = [rest.split()[-1] for i, rest in stage if i == "COPY"]
        self.assertIn(binary_path, copied_to, "the ENTRYPOINT is the binary the image copies in")
        self.assertEqual(healthcheck_command(stage), [binary_path, "health"])
        test = server_service()["healthcheck"]["test"]
        self.assertEqual(test, ["CMD", binary_path, "health"], "compose health check")

    def test_health_command_asks_ready_on_port(self):
        seen = []
        status = {"code": 200}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append(self.path)
                self.send_response(status["code"])
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            env = {"PATH": os.environ.get("PATH", ""), "PORT": str(httpd.server_address[1])}
            ok = run_binary("health", env=env, timeout=30)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertEqual(seen, ["/ready"], "suma-auth health probes /ready on PORT")
            status["code"] = 503
            failing = run_binary("health", env=env, timeout=30)
            self.assertEqual(failing.returncode, 1, "an unready server fails the health check")
        finally:
            httpd.shutdown()
            httpd.server_close()
        self.assertIn("/ready", openapi_paths())

    def test_deploy_smoke_test_probes_the_servers_health_paths(self):
        text = (WORKFLOWS / "deploy.yml").read_text()
        smoke = [s for job in yaml.safe_load(text)["jobs"].values() for s in job.get("steps", [])
                 if "smoke" in s.get("name", "").lower()]
        self.assertEqual(len(smoke), 1, "deploy.yml has one smoke-test step")
        probed = set(re.findall(r"(/[a-z]+)\b", smoke[0]["run"]))
        self.assertEqual({"/health", "/ready"} - probed, set(), "the smoke test probes /health and /ready")
        self.assertEqual(sorted(probed - openapi_paths()), [], "the smoke test probes paths the server serves")


class ImageAndStack(unittest.TestCase):
    def test_dockerfile_runtime_env_is_read_by_the_server(self):
        unknown = sorted(set(dockerfile_env(final_stage())) - set(server_env_vars()))
        self.assertEqual(unknown, [], "the image sets variables the server does not read")

    def test_read_only_root_filesystem_has_its_writable_places(self):
        data_dir = server_service().get("environment", {}).get("DATA_DIR") \
            or dockerfile_env(final_stage()).get("DATA_DIR")
        self.assertTrue(data_dir and data_dir.startswith("/"), "the image sets an absolute DATA_DIR")
        volumes = [rest for i, rest in final_stage() if i == "VOLUME"]
        declared = {v for rest in volumes for v in exec_form(rest)}
        self.assertIn(data_dir, declared, "DATA_DIR is a VOLUME of the image")
        service = server_service()
        self.assertTrue(service.get("read_only"), "compose runs the server with a read-only root")
        targets = {v["target"] for v in service.get("volumes", [])}
        self.assertIn(data_dir, targets, "compose mounts a volume at DATA_DIR")
        self.assertIn("/tmp", set(service.get("tmpfs", [])) | targets, "compose gives /tmp a tmpfs")
        users = [rest for i, rest in final_stage() if i == "USER"]
        self.assertTrue(users and users[-1].split(":")[0] not in ("0", "root"), "the image runs as non-root")

    def test_the_git_sha_build_argument_reaches_the_build(self):
        stages = dockerfile_stages()
        builder = [s for name, s in stages if any(i == "RUN" and "cargo build" in r for i, r in s)]
        self.assertEqual(len(builder), 1, "one stage builds the server")
        instructions = builder[0]
        build_at = next(n for n, (i, r) in enumerate(instructions) if i == "RUN" and "cargo build" in r)
        before = instructions[:build_at]
        self.assertIn(("ARG", "GIT_SHA=unknown"), before)
        self.assertEqual(dockerfile_env(before).get("SUMA_AUTH_GIT_SHA"), "${GIT_SHA}",
                         "the build script reads SUMA_AUTH_GIT_SHA")
        self.assertIn("GIT_SHA", server_service()["build"].get("args", {}), "compose passes GIT_SHA")
        deploy = (WORKFLOWS / "deploy.yml").read_text()
        self.assertRegex(deploy, r"build-args: \|\n\s+GIT_SHA=", "deploy.yml passes GIT_SHA")

    def test_postgres_runs_tls_only_and_the_server_verifies_it(self):
        services = compose()["services"]
        env = server_service()["environment"]
        self.assertEqual(env.get("DB_SSLMODE"), "verify-full")
        db_host = env["DB_HOST"]
        self.assertIn(db_host, services, "DB_HOST is a compose service")
        database = services[db_host]
        self.assertIn("ssl=on", database["command"])
        hba_mounts = [v for v in database.get("volumes", []) if v["target"].endswith("pg_hba.conf")]
        self.assertEqual(len(hba_mounts), 1)
        self.assertIn(f"hba_file={hba_mounts[0]['target']}", database["command"])
        rules = [line.split() for line in Path(hba_mounts[0]["source"]).read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        network_rules = [r for r in rules if r[0] != "local"]
        self.assertTrue(network_rules and all(r[0] == "hostssl" for r in network_rules),
                        "network connections are TLS only")
        root_cert = env.get("DB_SSLROOTCERT", "")
        mounted = [v for v in server_service().get("volumes", []) if root_cert.startswith(v["target"] + "/")]
        self.assertEqual(len(mounted), 1, "DB_SSLROOTCERT lies on a volume mounted into the server")
        db_volumes = {v.get("source") for v in database.get("volumes", []) if v.get("type") == "volume"}
        generator = [name for name, s in services.items()
                     if mounted[0]["source"] in {v.get("source") for v in s.get("volumes", [])} and name != SERVER]
        self.assertTrue(generator, "a service writes the CA the server trusts")
        for name in generator:
            self.assertEqual(database["depends_on"].get(name, {}).get("condition"),
                             "service_completed_successfully", f"{db_host} waits for {name}")
            gen_volumes = {v.get("source") for v in services[name].get("volumes", [])}
            self.assertTrue(db_volumes & gen_volumes, f"{name} writes the server certificate {db_host} reads")

    def test_no_migration_is_mounted_into_the_database_init_dir(self):
        for name, service in compose()["services"].items():
            for volume in service.get("volumes", []):
                self.assertFalse(volume["target"].startswith(MIGRATIONS_INIT_DIR),
                                 f"{name} mounts {volume.get('source')} into {MIGRATIONS_INIT_DIR}")

    def test_the_server_waits_for_healthy_dependencies(self):
        services = compose()["services"]
        server = server_service()
        depends = server.get("depends_on", {})
        env = server["environment"]
        for host_var in ("DB_HOST", "SMTP_HOST"):
            self.assertIn(env[host_var], depends, f"{host_var} service is a dependency")
        redis = re.match(r"rediss?://([^:/]+)", env["REDIS_ENDPOINT"]).group(1)
        self.assertIn(redis, depends)
        for name in (env["DB_HOST"], env["SMTP_HOST"], redis):
            self.assertEqual(depends[name]["condition"], "service_healthy", f"server waits for {name} healthy")
            self.assertIn("healthcheck", services[name], f"{name} has a health check")
        self.assertIn(env["DD_AGENT_HOST"], services, "DD_AGENT_HOST is a compose service")

    def test_readme_describes_the_services_compose_runs(self):
        text = README.read_text()
        match = re.search(r"^## Run the whole stack\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        self.assertIsNotNone(match, 'README has a "## Run the whole stack" section')
        section = match.group(1)
        self.assertIn("docker compose up", section)
        listed = set(re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", section, re.M))
        self.assertEqual(sorted(listed), sorted(compose()["services"]),
                         "the README's service table and compose's services")


class Workflows(unittest.TestCase):
    def workflows(self):
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}

    def test_deploy_runs_only_after_the_checks_pass_on_develop_or_main(self):
        workflows = self.workflows()
        deploy = workflows["deploy.yml"]
        triggers = deploy.get("on", deploy.get(True))  # YAML 1.1 reads the key `on` as true
        self.assertEqual(list(triggers), ["workflow_call"], "deploy.yml runs only when called")
        callers = [(name, job) for name, w in workflows.items() for job in w["jobs"].values()
                   if job.get("uses") == "./.github/workflows/deploy.yml"]
        self.assertEqual(len(callers), 1)
        name, job = callers[0]
        checks = set(workflows[name]["jobs"]) - {k for k, j in workflows[name]["jobs"].items() if "uses" in j}
        self.assertEqual(set(job["needs"]), checks, "the deployment needs every check job")
        self.assertIn("github.event_name == 'push'", job["if"])

    def test_actions_are_pinned_by_commit(self):
        for name, text in ((p.name, p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))):
            for ref in re.findall(r"uses:\s*(\S+)", text):
                if ref.startswith("./"):
                    continue
                self.assertRegex(ref, r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$", f"{name}: {ref} is not pinned by commit")

    def test_permissions_are_least_privilege(self):
        for name, workflow in self.workflows().items():
            self.assertEqual(workflow.get("permissions"), {}, f"{name}: top-level permissions: {{}}")
            for job_name, job in workflow["jobs"].items():
                permissions = job.get("permissions")
                self.assertIsInstance(permissions, dict, f"{name}/{job_name} declares its permissions")
                self.assertNotIn("write-all", str(permissions))
                if "uses" in job:
                    continue  # a reusable workflow's call: its own jobs are checked in its file
                uses_aws = any("configure-aws-credentials" in s.get("uses", "") for s in job.get("steps", []))
                self.assertEqual(permissions.get("id-token") == "write", uses_aws,
                                 f"{name}/{job_name}: id-token: write exactly where OIDC to AWS is used")
                for step in job.get("steps", []):
                    if "configure-aws-credentials" in step.get("uses", ""):
                        self.assertIn("role-to-assume", step["with"])
                        self.assertNotIn("aws-secret-access-key", step["with"], "OIDC, no static keys")


if __name__ == "__main__":
    unittest.main()
