"""Reference Triton kernels (imported as ``attnkata_kernels``): fast, readable, one family per file."""
