import os

from hypothesis import settings

# In CI the property tests run the same examples every time: a red build must be reproducible.
# Locally they explore new examples on every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A throwaway PostgreSQL server (session) and a fresh database per test: tests/postgres_server.py.
from tests.postgres_server import postgres_server, postgres_url  # noqa: E402, F401
