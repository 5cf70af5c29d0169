"""Models: names and specs (no torch), first-layer init strategies, offline weights, checkpoints, the factory
and presets."""
