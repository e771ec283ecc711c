"""The `necessity` command: a thin Click layer over the library."""
