"""Per-layer costs: measured on real hardware, or predicted from a device profile."""
