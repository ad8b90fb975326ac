"""Queue names and enqueue defaults, in one place."""

RANKINGS = "rankings"
DEFAULT = "default"
ALL = (RANKINGS, DEFAULT)
