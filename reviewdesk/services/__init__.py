"""State changes: each changes rows, writes the audit record and schedules pushes, atomically."""
