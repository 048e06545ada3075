"""The desktop window (PySide6): it shows and steers the live engine; it never runs perception or audio itself."""
