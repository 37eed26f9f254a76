import os

from hypothesis import settings

# In CI the property tests run the same examples every time: a red build must be reproducible.
# Locally they explore new examples on every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
