"""Close of business: store business days, cash drawer shifts, sealed Z reports, settlement reconciliation and
the overnight run that does them unasked (API.md v1.1 "Close of business")."""
