"""Exhaustive check of a derivation policy (implemented beside the policies, in the core)."""

from .._hierarchy import PolicyReport, check_policy

__all__ = ["PolicyReport", "check_policy"]
