"""The generated network trained by the C library, wherever it runs: this computer (ctypes) or a board."""
