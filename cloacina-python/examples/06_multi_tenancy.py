"""Tutorial 06 (mirrors upstream cloaca's multi-tenancy tutorial): tenants as PostgreSQL schemas,
provisioned with DatabaseAdmin, each with a runner of its own that never sees the others' runs.

    DATABASE_URL=postgres://postgres@localhost/postgres python examples/06_multi_tenancy.py
"""

import os
import sys
import uuid

import cloaca

with cloaca.WorkflowBuilder("tenant_onboarding") as builder:

    @cloaca.task()
    def tenant_onboarding(context):
        context.set("onboarded", context.get("tenant_info")["tenant_id"])
        return context


if __name__ == "__main__":
    url = os.environ.get("DATABASE_URL", "sqlite://:memory:")
    if not url.startswith("postgres"):
        try:
            cloaca.DatabaseAdmin(url).create_tenant(cloaca.TenantConfig("tenant_x", "x_user", ""))
        except ValueError as e:
            print(f"SQLite has no tenants: {e}")
            sys.exit(0)
        sys.exit("DatabaseAdmin accepted a SQLite database")
    admin = cloaca.DatabaseAdmin(url)
    suffix = uuid.uuid4().hex[:8]
    tenants = [f"acme_{suffix}", f"beta_{suffix}"]
    credentials = {t: admin.create_tenant(cloaca.TenantConfig(f"tenant_{t}", f"{t}_user", "")) for t in tenants}
    try:
        for tenant in tenants:
            creds = credentials[tenant]
            print(f"tenant {tenant}: schema {creds.schema_name}, user {creds.username}")
            with cloaca.DefaultRunner.with_schema(url, creds.schema_name) as runner:
                result = runner.execute("tenant_onboarding", cloaca.Context({"tenant_info": {"tenant_id": tenant}}))
                assert result.status == "Completed", result
                assert [r["workflow_name"] for r in runner.list_executions()] == ["tenant_onboarding"]
                print(f"  onboarded: {result.final_context.get('onboarded')}")
    finally:
        for tenant, creds in credentials.items():
            admin.remove_tenant(creds.schema_name, creds.username)
