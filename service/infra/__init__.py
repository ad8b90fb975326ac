"""Infrastructure: database- and driver-specific helpers the domain calls."""
