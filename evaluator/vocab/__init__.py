"""The domain vocabulary: spinal levels, partial dates and durations, units."""
