"""The campaign's figures: statistics (query-time and the never-stale pre-aggregate)
and the regulator's exports."""
