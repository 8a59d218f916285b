"""The machine underneath: the Linux fast-BLAS path, process teardown, and the doctor report."""
