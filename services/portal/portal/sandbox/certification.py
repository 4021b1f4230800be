"""Certification runs in the sandbox portal: the shared middleware tags the events of a run's requests
(smartpos_shared/certification.py); events caused later by the gateway (its webhooks) are attributed by the console
through the resources they name."""

from smartpos_shared.certification import CertificationRunMiddleware, observe

__all__ = ["CertificationRunMiddleware", "observe"]
