"""Store credit (API.md v1.1 "Close of business"): accounts, their append-only ledger, payment method `credit`."""
