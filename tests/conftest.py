"""Shared test settings.

Under CI (CI=true) hypothesis explores the same examples on every run, so a
red build always points at a real, reproducible failure; locally it explores
fresh examples each run.
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
