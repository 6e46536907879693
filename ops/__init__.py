"""Operator tools run by hand against a deployed stack (never part of a function)."""
