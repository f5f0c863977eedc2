"""The engine: the planner (`plan`, `tuning`) and the sequence loops it chooses between
(`sequence`: the NumPy reference; `fused`: the compiled kernels)."""
