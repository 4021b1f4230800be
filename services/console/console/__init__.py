"""The console service: partners, integrations, certification, rollouts and the audit log (issue 15)."""
