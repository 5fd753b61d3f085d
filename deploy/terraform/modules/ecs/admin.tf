# One-off administration tasks, run with `aws ecs run-task` in the service's
# subnets and security group (runbooks/one-off-tasks.md). The database and
# Redis are private; these tasks are the operator's only way in. There is no
# shell in the server image, so they use the psql and redis-cli images.

locals {
  # Writes the RDS CA bundle where libpq (PGSSLROOTCERT) reads it, then runs
  # the task's command (the default below, or a runbook's override).
  admin_entrypoint = ["sh", "-c", "printf '%s\\n' \"$RDS_CA_PEM\" > /tmp/rds-ca.pem && exec \"$@\"", "sh"]

  # Idempotent database bootstrap, run as the RDS master user:
  # - the extensions the migrations use (created here, so the service's role
  #   needs no extension privileges);
  # - suma_auth: NOLOGIN role that owns the schema the service migrates;
  # - suma_auth_a / suma_auth_b: the two login roles that alternate on password
  #   rotation; each session acts as suma_auth (ALTER ROLE ... SET role), so every
  #   object belongs to suma_auth whichever login created it;
  # - the login named in the app_database secret gets LOGIN and that secret's
  #   password. The password travels in the connection's startup options and is
  #   applied by a DO block: neither log_statement=ddl nor pg_stat_statements
  #   (which record top-level statements) ever see it.
  db_bootstrap_script = <<-EOT
    set -eu
    export PGOPTIONS="-c suma.app_user=$APP_DB_USER -c suma.app_password=$APP_DB_PASSWORD"
    psql -v ON_ERROR_STOP=1 -v group_role="$APP_GROUP_ROLE" -v dbname="$PGDATABASE" <<'SQL'
    CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
    SELECT format('CREATE ROLE %I NOLOGIN', :'group_role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'group_role') \gexec
    SELECT format('CREATE ROLE %I NOLOGIN IN ROLE %I', r, :'group_role') FROM unnest(ARRAY['suma_auth_a', 'suma_auth_b']) AS r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
    SELECT format('ALTER ROLE %I SET role = %I', r, :'group_role') FROM unnest(ARRAY['suma_auth_a', 'suma_auth_b']) AS r \gexec
    SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'dbname', :'group_role') \gexec
    SELECT format('GRANT USAGE, CREATE ON SCHEMA public TO %I', :'group_role') \gexec
    DO $$
    BEGIN
      IF current_setting('suma.app_user') NOT IN ('suma_auth_a', 'suma_auth_b') THEN
        RAISE EXCEPTION 'app_database username must be suma_auth_a or suma_auth_b';
      END IF;
      EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', current_setting('suma.app_user'), current_setting('suma.app_password'));
    END
    $$;
    SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'suma_auth%' ORDER BY rolname;
    SQL
  EOT
}

resource "aws_ecs_task_definition" "db_admin" {
  family                   = "${var.name_prefix}-db-admin"
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.admin_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "psql"
    image                  = var.helper_images.psql
    essential              = true
    readonlyRootFilesystem = true
    entryPoint             = local.admin_entrypoint
    command                = ["sh", "-c", local.db_bootstrap_script]
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]

    environment = [
      { name = "PGHOST", value = var.database.address },
      { name = "PGPORT", value = tostring(var.database.port) },
      { name = "PGDATABASE", value = var.database.name },
      { name = "PGSSLMODE", value = "verify-full" },
      { name = "PGSSLROOTCERT", value = "/tmp/rds-ca.pem" },
      { name = "PGAPPNAME", value = "suma-auth-admin" },
      { name = "PGCONNECT_TIMEOUT", value = "10" },
      { name = "RDS_CA_PEM", value = var.rds_ca_bundle_pem },
      { name = "APP_GROUP_ROLE", value = "suma_auth" },
    ]
    secrets = [
      { name = "PGUSER", valueFrom = "${var.database.master_user_secret_arn}:username::" },
      { name = "PGPASSWORD", valueFrom = "${var.database.master_user_secret_arn}:password::" },
      { name = "APP_DB_USER", valueFrom = "${var.database.app_secret_arn}:username::" },
      { name = "APP_DB_PASSWORD", valueFrom = "${var.database.app_secret_arn}:password::" },
    ]

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.admin.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "db-admin"
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_task_definition" "redis_admin" {
  family                   = "${var.name_prefix}-redis-admin"
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.admin_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  container_definitions = jsonencode([{
    name                   = "redis-cli"
    image                  = var.helper_images.redis_cli
    essential              = true
    readonlyRootFilesystem = true
    # redis-cli reads the AUTH token from REDISCLI_AUTH, never from its arguments.
    command = ["sh", "-c", "redis-cli --tls --cacert /etc/ssl/certs/ca-certificates.crt -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" PING"]

    environment = [
      { name = "REDIS_HOST", value = var.redis.primary_endpoint },
      { name = "REDIS_PORT", value = tostring(var.redis.port) },
    ]
    secrets = [{ name = "REDISCLI_AUTH", valueFrom = var.redis.auth_secret_arn }]

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.admin.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = "redis-admin"
      }
    }
  }])

  tags = var.tags
}
