"""Channel-asymmetry metrics of saliency maps: one slice, a whole volume, and their figures."""
