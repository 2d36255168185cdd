"""The cloud domains' tests use the root conftest's ``database`` fixtures (SQLite and PostgreSQL)."""
