"""The science: flows, stabilizers, training, local covariance, components and statistics, as pure
math (tensors and arrays in, tensors and arrays out; no file I/O)."""
