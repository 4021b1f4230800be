"""Test infrastructure: fresh databases built by the real migrations, services as real uvicorn processes,
and private Redis/NATS servers for fault tests (started on free ports, stopped by PID)."""
