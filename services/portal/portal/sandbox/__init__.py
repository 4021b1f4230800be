"""The sandbox (SMARTPOS_ENV=staging): test clocks and what only the sandbox may do."""
