"""Which initialisation will transfer? The robustness score of the thesis (ch. 4), on the user's volume.

Our reading of Eq. 4.2: rho = 1 - mean_i max(0, d(f(q~_i), f(k_i+)) - d(f(q~_i), f(k_i-)) + eps), with
cosine distance d, eps = 0.5 and f the encoder's second-to-last level, computed in seconds from
unlabelled windows before any training. Modules, one idea each:

- :mod:`.augment`: brightness/contrast jitter identical for all K channels, in-plane flips.
- :mod:`.sampling`: a bounded, seeded sample of windows from a lazy volume (reads only those crops).
- :mod:`.representation`: a candidate's encoder (built by the model factory) and its features f.
- :mod:`.score`: rho and its standard error from features (NumPy).
- :mod:`.ranking`: the generator that scores and ranks candidates (random apart).
- :mod:`.report`, :mod:`.figures`: table, CSV, JSON and the bar figure.

Nothing here imports torch at package import; :mod:`.representation` and a running ranking do.
"""
