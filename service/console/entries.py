"""Console pages: entries."""
