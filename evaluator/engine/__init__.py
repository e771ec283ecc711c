"""The engine: the only subpackage that imports durable_rules."""
