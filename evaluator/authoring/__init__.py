"""Tools for policy authors: lint, fmt, show, policy test suites and coverage."""
