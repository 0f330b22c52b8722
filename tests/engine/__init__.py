"""Tests of the shared training engine (hrnet.engine)."""
