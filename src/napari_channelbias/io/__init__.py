"""Volume input and output: formats, lazy readers, checks of user data, atomic writers."""
