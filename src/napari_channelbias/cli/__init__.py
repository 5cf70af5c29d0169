"""The ``channelbias`` command line: a parser per command group on the GUI-free core."""
