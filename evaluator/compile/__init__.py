"""Compile a policy model into an engine program and its durable_rules ruleset."""
