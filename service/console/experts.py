"""Console pages: experts."""
