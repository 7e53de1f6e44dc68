"""Training: the explicit loop, schedules, initialisation, regularisers, checkpoints and runs."""
