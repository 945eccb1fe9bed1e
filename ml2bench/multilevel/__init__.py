"""Multilevel machinery: transfer operators and hierarchies of objectives."""
