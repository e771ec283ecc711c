"""Read and validate: files and standard input under limits, the JSON Schemas, caches."""
