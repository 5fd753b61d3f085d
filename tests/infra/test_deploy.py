#!/usr/bin/env python3
"""Consistency of deploy/ with the server it deploys.

The server's facts come from the server itself: `suma-auth env --json` (every
variable it reads), `suma-auth metrics --json` (every metric it emits) and
`suma-auth openapi` (every route it mounts). The Terraform is parsed with
python-hcl2; the Datadog dashboard is JSON. A test fails when deploy/ sets a
variable the server does not read, misses one it requires in production, checks
health on a path or port the server does not serve, queries a metric or tag the
server does not emit, rate-limits a path that is not a route, or when a runbook
names a command that does not exist or revokes tokens with raw SQL.

Run: python tests/infra/test_deploy.py   (scripts/checks/deploy.sh runs it)
Binary: $SUMA_AUTH_BIN, else $HOME/.cache/suma-auth/target/debug/suma-auth.
Parser: python-hcl2 7.x from $SUMA_HCL2_PATH (scripts/checks/deploy.sh installs it
there, apart from checkov's fork of the same package name).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import unittest
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
TF = os.path.join(DEPLOY, "terraform")
MODULES = os.path.join(TF, "modules")
ENVIRONMENTS = ("dev", "staging", "production")

_hcl2_path = os.environ.get(
    "SUMA_HCL2_PATH",
    os.path.join(os.path.expanduser("~"), ".cache", "suma-auth", "py-hcl2-7.3.1"),
)
if os.path.isdir(_hcl2_path):
    sys.path.insert(0, _hcl2_path)
import hcl2  # noqa: E402  (python-hcl2 7.x)

# Tags the Datadog agent adds to every DogStatsD metric of an ECS Fargate task
# (DD_DOGSTATSD_TAG_CARDINALITY=orchestrator), beside the server's own.
AGENT_TAGS = {
    "task_arn", "task_family", "task_version", "task_name", "ecs_cluster_name",
    "ecs_service_name", "ecs_container_name", "container_name", "region",
    "aws_account", "cluster_arn", "service_arn", "availability-zone",
}
# Metrics that do not come from the server: the Datadog AWS integration.
INTEGRATION_PREFIXES = ("aws.",)
SERVER_SUBCOMMANDS = {"serve", "migrate", "keys", "env", "metrics", "openapi", "health", "admin"}


def server_binary() -> str:
    path = os.environ.get("SUMA_AUTH_BIN") or os.path.join(
        os.path.expanduser("~"), ".cache", "suma-auth", "target", "debug", "suma-auth"
    )
    if not os.access(path, os.X_OK):
        raise SystemExit(f"suma-auth binary not found at {path} (build it, or set SUMA_AUTH_BIN)")
    return path


def run_server(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_HOST")}
    out = subprocess.run([server_binary(), *args], capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"suma-auth {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def norm(s: str) -> str:
    return re.sub(r"\s+", "", s)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def load_hcl(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return hcl2.load(fh)


def blocks(doc: dict, kind: str) -> dict:
    """Merges the list-of-dicts python-hcl2 gives for repeated top-level blocks."""
    merged: dict = {}
    for item in doc.get(kind, []):
        for k, v in item.items():
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k].update(v)
            else:
                merged[k] = v
    return merged


def module_doc(module: str) -> dict:
    """Every .tf file of a module directory, merged per block kind."""
    out: dict = {}
    for f in sorted(glob.glob(os.path.join(MODULES, module, "*.tf"))):
        for kind, items in load_hcl(f).items():
            out.setdefault(kind, []).extend(items)
    return out


_configs: dict = {}


def config_dir(path: str) -> dict:
    """Names a Terraform directory declares: variables, locals, outputs, resources, data, modules."""
    path = os.path.normpath(path)
    if path not in _configs:
        doc: dict = {}
        for f in sorted(glob.glob(os.path.join(path, "*.tf"))):
            for kind, items in load_hcl(f).items():
                doc.setdefault(kind, []).extend(items)
        _configs[path] = {
            "doc": doc,
            "variables": blocks(doc, "variable"),
            "locals": set(blocks(doc, "locals")),
            "outputs": set(blocks(doc, "output")),
            "modules": blocks(doc, "module"),
            "resources": {(t, n) for b in doc.get("resource", []) for t, r in b.items() for n in r},
            "data": {(t, n) for b in doc.get("data", []) for t, r in b.items() for n in r},
        }
    return _configs[path]


def locals_of(module: str) -> dict:
    return blocks(module_doc(module), "locals")


def variables_of(path_glob: str) -> dict:
    found: dict = {}
    for f in sorted(glob.glob(path_glob)):
        found.update(blocks(load_hcl(f), "variable"))
    return found


def resources_of(module: str, rtype: str) -> dict:
    out: dict = {}
    for item in module_doc(module).get("resource", []):
        if rtype in item:
            out.update(item[rtype])
    return out


def module_calls(module: str) -> dict:
    return blocks(module_doc(module), "module")


def strip_interp(s: str) -> str:
    """`${...}` interpolations (nested braces included) replaced by TFVAR."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(s) and depth:
                depth += {"{": 1, "}": -1}.get(s[j], 0)
                j += 1
            out.append("TFVAR")
            i = j
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


METRIC_REF = re.compile(
    r"(?P<agg>\b(?:avg|sum|min|max|count|p\d{1,3}(?:\.\d+)?)):"
    r"(?P<name>[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)"
    r"\{(?P<filter>[^}]*)\}"
    r"(?:\s*by\s*\{(?P<by>[^}]*)\})?"
    r"(?P<rest>(?:\.(?:as_count|as_rate|rollup|fill)\([^)]*\))*)"
)


def metric_refs(query: str) -> list[dict]:
    q = strip_interp(query)
    refs = [m.groupdict() for m in METRIC_REF.finditer(q)]
    if not refs:
        raise AssertionError(f"no metric found in query {query!r}")
    return refs


def filter_tag_keys(filt: str) -> set[str]:
    keys = set()
    for item in filt.split(","):
        item = item.strip().lstrip("!")
        if not item or item == "*" or item.startswith("$") or item == "TFVAR":
            continue
        if ":" not in item:
            raise AssertionError(f"filter item {item!r} is not key:value")
        keys.add(item.split(":", 1)[0])
    return keys


def walk_strings(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v, key)
    elif isinstance(node, str):
        yield key, node


def walk_dicts(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk_dicts(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_dicts(v)


def monitors() -> dict:
    loc = locals_of("monitoring")
    return {**loc["base_monitors"], **loc["running_tasks_monitor"], **loc["no_traffic_monitor"]}


class Server:
    """The server's own description of itself, read once."""

    env: dict[str, dict] = {}
    metrics: dict[str, dict] = {}
    paths: dict[str, set[str]] = {}

    @classmethod
    def load(cls) -> None:
        if cls.env:
            return
        cls.env = {e["name"]: e for e in json.loads(run_server("env", "--json"))}
        cls.metrics = {m["name"]: m for m in json.loads(run_server("metrics", "--json"))}
        doc = json.loads(run_server("openapi"))
        cls.paths = {p: {m.lower() for m in ops} for p, ops in doc["paths"].items()}


class TaskDefinition(unittest.TestCase):
    """The ECS task definition runs this server as it is."""

    @classmethod
    def setUpClass(cls) -> None:
        Server.load()
        cls.locals = locals_of("ecs")
        cls.environment = cls.locals["app_environment_all"]
        cls.secrets = cls.locals["app_secrets"]
        cls.task = resources_of("ecs", "aws_ecs_task_definition")["app"]["container_definitions"]
        start = cls.task.index('"name": "${local.app_container}"')
        end = cls.task.index('"name": "${local.agent_container}"')
        cls.app_container = cls.task[start:end]
        cls.agent_container = cls.task[end:]

    def test_the_app_container_takes_its_variables_from_the_checked_maps(self) -> None:
        self.assertIn('"environment": "${[for k in sort(keys(local.app_environment))', self.app_container)
        self.assertIn('"secrets": "${[for k in sort(keys(local.app_secrets))', self.app_container)
        self.assertEqual(
            norm(self.locals["app_environment"]),
            norm('${{for k, v in local.app_environment_all : k => v if v != ""}}'),
        )

    def test_every_variable_set_is_one_the_server_reads(self) -> None:
        for name in [*self.environment, *self.secrets]:
            self.assertIn(name, Server.env, f"the task sets {name}, which the server does not read")
        self.assertFalse(set(self.environment) & set(self.secrets), "a variable set twice")

    def test_every_variable_required_in_production_is_set(self) -> None:
        provided = set(self.environment) | set(self.secrets)
        for name, spec in Server.env.items():
            if spec["required_in_production"]:
                self.assertTrue(
                    name in provided or provided & set(spec["alternatives"]),
                    f"{name} (or one of {spec['alternatives']}) is required in production but not set",
                )

    def test_secret_variables_come_from_secrets_manager(self) -> None:
        for name in self.environment:
            self.assertFalse(Server.env.get(name, {}).get("secret"), f"{name} is a secret but set as plain environment")

    def test_json_secrets_are_selected_by_key(self) -> None:
        json_secrets = ("app_secret_arn", "jwt_signing_key")
        for name, value_from in self.secrets.items():
            if any(s in value_from for s in json_secrets):
                self.assertRegex(value_from, r":[a-z_]+::$", f"{name} would receive a whole JSON document")

    def test_database_host_is_the_rds_address_over_verified_tls(self) -> None:
        self.assertEqual(self.environment["DB_HOST"], "${var.database.address}")
        self.assertEqual(self.environment["DB_SSLMODE"], "verify-full")
        self.assertIn("DB_SSLROOTCERT", self.environment)
        stack = locals_of("stack")["database"]
        self.assertIn("module.rds[0].address", stack)
        self.assertNotIn(".endpoint", stack)
        rds_out = blocks(module_doc("rds"), "output")["address"]["value"]
        self.assertEqual(rds_out, "${aws_db_instance.main.address}")
        self.assertEqual(module_calls("stack")["ecs"]["database"]["address"], "${local.database.address}")

    def test_redis_is_the_primary_endpoint_over_tls(self) -> None:
        self.assertTrue(self.environment["REDIS_ENDPOINT"].startswith("rediss://"))
        self.assertIn("var.redis.primary_endpoint", self.environment["REDIS_ENDPOINT"])
        self.assertEqual(
            module_calls("stack")["ecs"]["redis"]["primary_endpoint"],
            "${module.redis.primary_endpoint_address}",
        )
        out = blocks(module_doc("redis"), "output")["primary_endpoint_address"]["value"]
        self.assertEqual(out, "${aws_elasticache_replication_group.main.primary_endpoint_address}")
        params = resources_of("redis", "aws_elasticache_parameter_group")["main"]["parameter"]
        policy = {p["name"]: p["value"] for p in params}["maxmemory-policy"]
        self.assertIn(policy, ("noeviction", "volatile-ttl"), "Redis may evict security keys")

    def test_public_url_is_https_and_proxies_are_trusted(self) -> None:
        self.assertEqual(module_calls("stack")["ecs"]["public_url"], "https://${var.domain_name}")
        self.assertIn("TRUSTED_PROXIES", self.environment)
        trusted = locals_of("stack")["trusted_proxies"]
        self.assertIn("vpc_cidr", trusted)
        self.assertIn("cloudfront", trusted)

    def test_unified_service_tagging_matches_the_monitors(self) -> None:
        self.assertEqual(self.environment["DD_SERVICE"], Server.env["DD_SERVICE"]["default"])
        self.assertEqual(self.environment["DD_ENV"], "${var.environment}")
        # The version tag is the image tag, in the task and the agent; CI replaces
        # both together when it renders a revision.
        self.assertEqual(self.environment["DD_VERSION"], "${var.image_tag}")
        self.assertIn('{"name": "DD_VERSION", "value": "${var.image_tag}"}', self.agent_container)
        with open(os.path.join(ROOT, ".github", "workflows", "deploy.yml")) as f:
            self.assertIn("environment-variables: DD_VERSION=${{ github.sha }}", f.read())
        self.assertEqual(self.environment["DD_AGENT_HOST"], "127.0.0.1")
        self.assertEqual(self.environment["DD_DOGSTATSD_PORT"], Server.env["DD_DOGSTATSD_PORT"]["default"])
        mon = variables_of(os.path.join(MODULES, "monitoring", "variables.tf"))
        self.assertEqual(mon["service"]["default"], self.environment["DD_SERVICE"])
        self.assertIn("env:${var.environment}", locals_of("monitoring")["f"])

    def test_a_datadog_agent_sidecar_receives_dogstatsd(self) -> None:
        self.assertIn('"image": "${var.datadog_agent_image}"', self.agent_container)
        self.assertIn('"DD_API_KEY"', self.agent_container)
        self.assertIn('"containerName": "${local.agent_container}"', self.app_container)

    def test_stop_timeout_exceeds_the_servers_drain(self) -> None:
        self.assertIn('"stopTimeout": "${var.stop_timeout_seconds}"', self.app_container)
        variables = variables_of(os.path.join(MODULES, "ecs", "variables.tf"))
        drain = int(Server.env["SHUTDOWN_TIMEOUT_SECONDS"]["default"])
        self.assertEqual(variables["shutdown_timeout_seconds"]["default"], drain)
        self.assertEqual(self.environment["SHUTDOWN_TIMEOUT_SECONDS"], "${tostring(var.shutdown_timeout_seconds)}")
        self.assertGreater(variables["stop_timeout_seconds"]["default"], drain)
        self.assertLessEqual(variables["stop_timeout_seconds"]["default"], 120)


class HealthAndPort(unittest.TestCase):
    """Health paths and the port agree with the server."""

    @classmethod
    def setUpClass(cls) -> None:
        Server.load()
        cls.port = int(Server.env["PORT"]["default"])

    def test_every_container_port_is_the_servers_port(self) -> None:
        for module in ("vpc", "alb", "ecs"):
            v = variables_of(os.path.join(MODULES, module, "variables.tf"))
            self.assertEqual(v["container_port"]["default"], self.port, module)
        calls = module_calls("stack")
        self.assertEqual(calls["alb"]["container_port"], self.port)
        self.assertEqual(calls["ecs"]["container_port"], self.port)
        self.assertEqual(locals_of("ecs")["app_environment_all"]["PORT"], "${tostring(var.container_port)}")
        task = resources_of("ecs", "aws_ecs_task_definition")["app"]["container_definitions"]
        self.assertIn('"containerPort": "${var.container_port}"', task)

    def test_the_container_health_check_is_suma_auth_health_on_a_served_route(self) -> None:
        command = locals_of("ecs")["health_check_command"]
        self.assertEqual(command[0], "CMD")
        self.assertEqual(os.path.basename(command[1]), "suma-auth")
        self.assertEqual(command[2], "health")
        run_server("health", "--help")
        dockerfile = os.path.join(ROOT, "Dockerfile")
        if command[1].startswith("/") and os.path.isfile(dockerfile):
            self.assertIn(command[1], read_text(dockerfile), "the image does not install the binary there")
        if "--url" in command:
            url = command[command.index("--url") + 1]
            m = re.fullmatch(r"http://127\.0\.0\.1:\$\{var\.container_port\}(/\S*)", url)
            self.assertIsNotNone(m, url)
            self.assertIn("get", Server.paths.get(m.group(1), set()), f"{m.group(1)} is not a GET route")

    def test_the_load_balancer_checks_a_served_route(self) -> None:
        paths = [variables_of(os.path.join(MODULES, "alb", "variables.tf"))["health_check_path"]["default"]]
        paths.append(module_calls("stack")["alb"]["health_check_path"])
        for path in paths:
            self.assertIn("get", Server.paths.get(path, set()), f"ALB health check {path} is not a GET route")


class Datadog(unittest.TestCase):
    """Every metric a dashboard or monitor queries is one the server emits."""

    @classmethod
    def setUpClass(cls) -> None:
        Server.load()
        cls.queries: list[tuple[str, str]] = []
        for key, monitor in monitors().items():
            cls.queries.append((f"monitor {key}", monitor["query"]))
        for path in glob.glob(os.path.join(MODULES, "monitoring", "dashboards", "*.json.tftpl")):
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
            for key, s in walk_strings(doc):
                if key in ("q", "query"):
                    cls.queries.append((os.path.basename(path), s))

    def test_there_is_something_to_check(self) -> None:
        self.assertGreater(len(self.queries), 20)

    def test_every_server_metric_queried_is_in_the_catalogue_with_its_tags(self) -> None:
        default_tags = {"env", "service", "version"}
        for where, query in self.queries:
            for ref in metric_refs(query):
                name = ref["name"]
                if name.startswith(INTEGRATION_PREFIXES):
                    continue
                self.assertIn(name, Server.metrics, f"{where}: {name} is not in `suma-auth metrics`")
                spec = Server.metrics[name]
                allowed = set(spec["tags"]) | default_tags | AGENT_TAGS
                used = filter_tag_keys(ref["filter"])
                if ref["by"]:
                    used |= {t.strip() for t in ref["by"].split(",") if t.strip()}
                self.assertLessEqual(used, allowed, f"{where}: {name} has no tag {used - allowed}")
                agg, rest = ref["agg"], ref["rest"] or ""
                if agg.startswith("p"):
                    self.assertEqual(spec["kind"], "distribution", f"{where}: percentile of a {spec['kind']}")
                if "as_count" in rest or "as_rate" in rest:
                    self.assertEqual(spec["kind"], "counter", f"{where}: {name} is a {spec['kind']}")

    def test_every_metric_not_from_the_server_is_an_integrations(self) -> None:
        for where, query in self.queries:
            for ref in metric_refs(query):
                self.assertTrue(
                    ref["name"] in Server.metrics or ref["name"].startswith(INTEGRATION_PREFIXES),
                    f"{where}: {ref['name']} comes from nowhere",
                )

    def test_every_monitor_is_created_from_the_checked_maps(self) -> None:
        m = locals_of("monitoring")["monitors"]
        self.assertIn("merge(local.base_monitors, local.running_tasks_monitor, local.no_traffic_monitor)", m)
        monitor = resources_of("monitoring", "datadog_monitor")["this"]
        self.assertEqual(monitor["for_each"], "${local.monitors}")
        self.assertEqual(monitor["query"], "${each.value.query} ${each.value.op} ${each.value.critical}")

    def test_only_traffic_independent_monitors_alert_on_missing_data(self) -> None:
        for key, monitor in monitors().items():
            if monitor["notify_no_data"]:
                self.assertIn(key, ("dependency_down", "running_tasks", "no_traffic"), key)

    def test_error_rate_pages_on_5xx_and_latency_uses_the_distribution(self) -> None:
        monitors_ = monitors()
        error = monitors_["error_rate"]["query"]
        self.assertIn("auth.endpoint.errors{${local.f},status_class:5xx}", error)
        self.assertIn("auth.endpoint.requests", error)
        self.assertFalse(monitors_["error_rate"]["notify_no_data"])
        self.assertIn("p95:auth.endpoint.duration", monitors_["latency_p95"]["query"])

    def test_the_percentile_configuration_names_real_tags(self) -> None:
        conf = resources_of("monitoring", "datadog_metric_tag_configuration")["endpoint_duration"]
        spec = Server.metrics[conf["metric_name"]]
        self.assertEqual(spec["kind"], "distribution")
        self.assertLessEqual(set(conf["tags"]), set(spec["tags"]) | {"env", "service", "version"})


class Waf(unittest.TestCase):
    """Every path the WAF rate-limits is a prefix of a route the server mounts."""

    @classmethod
    def setUpClass(cls) -> None:
        Server.load()

    def test_every_rate_limited_path_is_a_route_prefix(self) -> None:
        limits = dict(variables_of(os.path.join(MODULES, "waf", "variables.tf"))["path_rate_limits"]["default"])
        waf_call = module_calls("stack")["waf"]
        limits.update(waf_call.get("path_rate_limits", {}) if isinstance(waf_call.get("path_rate_limits"), dict) else {})
        self.assertTrue(limits)
        for key, rule in limits.items():
            self.assertTrue(
                any(p.startswith(rule["path"]) for p, ops in Server.paths.items() if "post" in ops),
                f"WAF rule {key}: {rule['path']} is not a prefix of any POST route",
            )
            self.assertGreaterEqual(rule["limit"], 10, "AWS WAF's minimum rate limit is 10")

    def test_the_path_match_is_a_prefix_match_on_post(self) -> None:
        acl = resources_of("waf", "aws_wafv2_web_acl")["this"]
        statements = [d for d in walk_dicts(acl) if "search_string" in d]
        by_value = {d["search_string"]: d for d in statements}
        self.assertEqual(by_value["${var.path_rate_limits[rule.value].path}"]["positional_constraint"], "STARTS_WITH")
        self.assertEqual(by_value["POST"]["positional_constraint"], "EXACTLY")


class Layout(unittest.TestCase):
    """Modules and environments as the deployment guide describes them."""

    def test_every_module_and_environment_exists(self) -> None:
        for module in ("vpc", "ecs", "rds", "redis", "alb", "waf", "cloudfront", "secrets",
                       "monitoring", "backup", "dns_certs", "stack"):
            for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
                self.assertTrue(os.path.isfile(os.path.join(MODULES, module, f)), f"{module}/{f}")
        for env in ENVIRONMENTS:
            for f in ("main.tf", "variables.tf", "versions.tf", "terraform.tfvars"):
                self.assertTrue(os.path.isfile(os.path.join(TF, "environments", env, f)), f"{env}/{f}")

    def test_provider_versions_are_pinned_and_identical(self) -> None:
        seen: dict[str, set[str]] = {}
        for f in glob.glob(os.path.join(TF, "**", "versions.tf"), recursive=True):
            terraform = load_hcl(f)["terraform"][0]
            self.assertIn("required_version", terraform, f)
            for providers in terraform.get("required_providers", []):
                for name, spec in providers.items():
                    self.assertRegex(spec["version"], r"^\d+\.\d+\.\d+$", f"{f}: {name} is not pinned")
                    seen.setdefault(name, set()).add(spec["version"])
        for name, versions in seen.items():
            self.assertEqual(len(versions), 1, f"{name} pinned to several versions: {versions}")

    def test_modules_are_local(self) -> None:
        for f in glob.glob(os.path.join(TF, "**", "*.tf"), recursive=True):
            for call in blocks(load_hcl(f), "module").values():
                self.assertTrue(call["source"].startswith("./") or call["source"].startswith("../"), f)

    def test_environments_use_the_s3_backend_with_locking(self) -> None:
        for env in ENVIRONMENTS:
            terraform = load_hcl(os.path.join(TF, "environments", env, "versions.tf"))["terraform"][0]
            s3 = terraform["backend"][0]["s3"]
            self.assertEqual(s3["key"], f"suma-auth/{env}.tfstate")
            self.assertTrue(s3["encrypt"])
            self.assertTrue(s3["dynamodb_table"])

    def test_every_variable_is_typed_and_described(self) -> None:
        for f in glob.glob(os.path.join(TF, "**", "variables.tf"), recursive=True):
            for name, spec in blocks(load_hcl(f), "variable").items():
                self.assertIn("type", spec, f"{f}: {name}")
                self.assertIn("description", spec, f"{f}: {name}")

    def test_tfvars_set_declared_variables_of_their_environment(self) -> None:
        for env in ENVIRONMENTS:
            declared = variables_of(os.path.join(TF, "environments", env, "variables.tf"))
            values = load_hcl(os.path.join(TF, "environments", env, "terraform.tfvars"))
            self.assertLessEqual(set(values), set(declared), env)
            self.assertEqual(values["environment"], env)

    def test_every_reference_resolves(self) -> None:
        """What `terraform validate` would say about names, which cannot run here."""
        problems = []
        dirs = sorted({os.path.dirname(f) for f in glob.glob(os.path.join(TF, "**", "*.tf"), recursive=True)})
        for d in dirs:
            c = config_dir(d)
            for s in (v for _, v in walk_strings(c["doc"])):
                for m in re.finditer(r"\bvar\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_]\w*))?", s):
                    name, attr = m.groups()
                    if name not in c["variables"]:
                        problems.append(f"{d}: var.{name}")
                    elif attr and "object(" in str(c["variables"][name].get("type", "")) \
                            and f'"{attr}"' not in c["variables"][name]["type"]:
                        problems.append(f"{d}: var.{name} has no attribute {attr}")
                for m in re.finditer(r"\blocal\.([A-Za-z_][\w-]*)", s):
                    if m.group(1) not in c["locals"]:
                        problems.append(f"{d}: local.{m.group(1)}")
                for m in re.finditer(r"\bmodule\.([A-Za-z_][\w-]*)(?:\[\d+\])?\.([A-Za-z_][\w-]*)", s):
                    mod, out = m.groups()
                    if mod not in c["modules"]:
                        problems.append(f"{d}: module.{mod}")
                    elif out not in config_dir(os.path.join(d, c["modules"][mod]["source"]))["outputs"]:
                        problems.append(f"{d}: module.{mod} has no output {out}")
                for m in re.finditer(r"(?<![\w.])data\.([a-z0-9_]+)\.([A-Za-z_][\w-]*)", s):
                    if (m.group(1), m.group(2)) not in c["data"]:
                        problems.append(f"{d}: data.{m.group(1)}.{m.group(2)}")
                for m in re.finditer(r"(?<![\w.])((?:aws|random|datadog)_[a-z0-9_]+|terraform_data)\.([A-Za-z_][\w-]*)", s):
                    if (m.group(1), m.group(2)) not in c["resources"]:
                        problems.append(f"{d}: {m.group(1)}.{m.group(2)}")
            for name, call in c["modules"].items():
                callee = config_dir(os.path.join(d, call["source"]))["variables"]
                for arg in set(call) - {"source", "providers", "count", "for_each", "depends_on"}:
                    if arg not in callee:
                        problems.append(f"{d}: module {name} has no variable {arg}")
                for v, spec in callee.items():
                    if "default" not in spec and v not in call:
                        problems.append(f"{d}: module {name} misses {v}")
        self.assertEqual(sorted(set(problems)), [])

    def test_environment_roots_are_the_same_code(self) -> None:
        """Each environment links the one copy of the code in environments/root/."""
        for f in ("main.tf", "variables.tf", "outputs.tf", "providers.tf"):
            shared = os.path.join(TF, "environments", "root", f)
            self.assertTrue(os.path.isfile(shared) and not os.path.islink(shared), shared)
            for e in ENVIRONMENTS:
                link = os.path.join(TF, "environments", e, f)
                self.assertTrue(os.path.islink(link), f"{e}/{f} is not a link to ../root/{f}")
                self.assertEqual(os.readlink(link), os.path.join("..", "root", f), f"{e}/{f}")


class DatabaseBootstrap(unittest.TestCase):
    """The db-admin task's bootstrap script, run with psql against the suite's PostgreSQL
    (TEST_DATABASE_URL) as a database owner with CREATEROLE standing in for the RDS master
    user: the login roles act as the schema owner, the server migrates as one of them, and
    a rotation moves to the other."""

    LOGINS = ("suma_auth_a", "suma_auth_b")

    def setUp(self) -> None:
        url = os.environ.get("TEST_DATABASE_URL")
        if not url or not shutil.which("psql"):
            self.skipTest("needs TEST_DATABASE_URL (scripts/test.sh sets it) and psql")
        u = urllib.parse.urlparse(url)
        self.base_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"),
                         "PGHOST": u.hostname or "127.0.0.1", "PGPORT": str(u.port or 5432)}
        self.superuser = u.username or "postgres"
        self.db = f"suma_bootstrap_check_{os.getpid()}"
        self.admin = f"suma_bootstrap_admin_{os.getpid()}"
        lock_dir = os.path.join(os.path.expanduser("~"), ".cache", "suma-auth")
        os.makedirs(lock_dir, exist_ok=True)
        # The login roles are cluster-wide names: one run at a time on this server.
        lock = open(os.path.join(lock_dir, "bootstrap-test.lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        self.addCleanup(lock.close)
        existing = self.sql(self.superuser, "postgres",
                            "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ('suma_auth', 'suma_auth_a', 'suma_auth_b')")
        if existing:
            self.fail(f"roles {existing} already exist on the test server; this test creates and drops them")
        self.addCleanup(self.drop_everything)
        self.sql(self.superuser, "postgres", f"CREATE ROLE {self.admin} LOGIN CREATEROLE")
        self.sql(self.superuser, "postgres", f"CREATE DATABASE {self.db} OWNER {self.admin}")

    def drop_everything(self) -> None:
        for statement in (f"DROP DATABASE IF EXISTS {self.db}", "DROP ROLE IF EXISTS suma_auth_a",
                          "DROP ROLE IF EXISTS suma_auth_b", "DROP ROLE IF EXISTS suma_auth",
                          f"DROP ROLE IF EXISTS {self.admin}"):
            self.sql(self.superuser, "postgres", statement)

    def sql(self, user: str, db: str, statement: str, check: bool = True) -> str:
        out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db, "-c", statement],
                             capture_output=True, text=True, env=self.base_env, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"{statement}: {out.stderr}")
        return out.stdout.strip() if out.returncode == 0 else ""

    def bootstrap(self, login: str, password: str) -> subprocess.CompletedProcess:
        script = blocks(module_doc("ecs"), "locals")["db_bootstrap_script"]
        env = dict(self.base_env, PGUSER=self.admin, PGDATABASE=self.db, APP_GROUP_ROLE="suma_auth",
                   APP_DB_USER=login, APP_DB_PASSWORD=password)
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)

    def server(self, login: str, password: str, *args: str) -> str:
        env = dict(self.base_env, DB_HOST=self.base_env["PGHOST"], DB_PORT=self.base_env["PGPORT"],
                   DB_NAME=self.db, DB_USER=login, DB_PASSWORD=password, DB_SSLMODE="disable")
        out = subprocess.run([server_binary(), *args], capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_logins_act_as_the_schema_owner_and_rotate(self) -> None:
        for _ in range(2):  # idempotent
            run = self.bootstrap("suma_auth_a", "first-password")
            self.assertEqual(run.returncode, 0, run.stderr)
        self.server("suma_auth_a", "first-password", "migrate", "apply")
        owners = self.sql(self.superuser, self.db, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        self.assertEqual(owners, "suma_auth", "tables must belong to the group role, not to a login")

        run = self.bootstrap("suma_auth_b", "second-password")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.sql(self.admin, self.db, "ALTER ROLE suma_auth_a NOLOGIN PASSWORD NULL")
        self.assertIn("pending: none", self.server("suma_auth_b", "second-password", "migrate", "status"))
        self.sql("suma_auth_b", self.db, "INSERT INTO login_lockouts (account_key) VALUES ('bootstrap-check')")
        self.assertEqual(self.sql("suma_auth_a", self.db, "SELECT 1", check=False), "", "the old login still works")

    def test_only_the_two_logins_are_accepted(self) -> None:
        run = self.bootstrap(self.admin, "x")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("must be suma_auth_a or suma_auth_b", run.stderr)


class Runbooks(unittest.TestCase):
    """Runbook commands are real."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.docs = sorted(glob.glob(os.path.join(DEPLOY, "runbooks", "*.md"))) + [os.path.join(DEPLOY, "README.md")]
        cls.code = {}
        for path in cls.docs:
            text = read_text(path)
            cls.code[path] = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S))

    def test_the_runbooks_exist(self) -> None:
        names = {os.path.basename(p) for p in self.docs}
        for required in ("disaster-recovery.md", "incident-response.md", "key-rotation.md",
                         "secret-rotation.md", "one-off-tasks.md", "README.md"):
            self.assertIn(required, names)

    def test_every_suma_auth_command_is_a_real_subcommand(self) -> None:
        for path, code in self.code.items():
            for m in re.finditer(r"(?<![\w/-])suma-auth\s+([a-z][a-z-]*)", code):
                sub = m.group(1)
                if sub in ("health",) or sub in SERVER_SUBCOMMANDS:
                    run_server(sub, "--help")
                    continue
                self.fail(f"{os.path.basename(path)}: `suma-auth {sub}` is not a command of the server")

    def test_no_token_revocation_by_raw_sql(self) -> None:
        for path, code in self.code.items():
            self.assertNotRegex(code, r"(?i)update\s+refresh_tokens", os.path.basename(path))

    def test_sql_in_runbooks_names_real_tables_and_columns(self) -> None:
        schema = " ".join(read_text(f) for f in glob.glob(os.path.join(ROOT, "migrations", "*.up.sql")))
        tables = set(re.findall(r"(?i)create table (?:if not exists )?(\w+)", schema))
        tables |= {"schema_migrations", "pg_roles", "pg_stat_activity"}
        statements = []
        for path, code in self.code.items():
            statements += [(path, m.group(1)) for m in re.finditer(r'psql_admin "([^"]+)"', code)]
        self.assertGreater(len(statements), 5)
        for path, sql in statements:
            for m in re.finditer(r"(?i)\b(?:from|update|into|join)\s+([a-z_][a-z0-9_]*)", sql):
                self.assertIn(m.group(1).lower(), tables, f"{os.path.basename(path)}: {sql}")
        for path, sql in statements:
            m = re.match(r"(?i)update\s+(\w+)\s+set\s+(.*?)\s+where", sql)
            if m:
                for column in re.findall(r"(\w+)\s*=", m.group(2)):
                    self.assertRegex(schema, rf"(?i)\b{column}\b", f"{sql}: no column {column}")

    def test_every_monitor_links_to_a_section_of_the_incident_runbook(self) -> None:
        text = read_text(os.path.join(DEPLOY, "runbooks", "incident-response.md"))
        anchors = {
            re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^## (.+)$", text, re.M)
        }
        for key, monitor in monitors().items():
            self.assertIn(monitor["section"], anchors, f"monitor {key}")

if __name__ == "__main__":
    unittest.main(verbosity=1)
