"""Many cases: worker processes, resumable JSON Lines, a Dask cluster."""
