"""The study: one model per first-layer init, trained, evaluated and audited, with its report."""
