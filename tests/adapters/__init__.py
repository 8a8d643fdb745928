"""Adapter tests (a package, so module names stay unique next to other test folders)."""
