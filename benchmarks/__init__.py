"""Reference runners the bench compares against (not part of the installed package)."""
