"""Reads: what a user may see, and what pages and pushes render."""
