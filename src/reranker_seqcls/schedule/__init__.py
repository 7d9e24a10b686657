"""Schedule: the fleet file, staleness of targets, and the plan of what to re-convert."""
