"""Provider sandboxes: same paths, fields, units, statuses and signatures as the real providers."""
