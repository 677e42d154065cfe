"""Tests of the Python SDK against a fake Kiln runtime API (see fake_kiln)."""
