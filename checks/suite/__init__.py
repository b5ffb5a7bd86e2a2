"""One module per check; each exposes `CHECK: CheckSpec`. The order lives in checks.registry."""
