"""The tabs of the Class subsets & pre-training page, one file each."""
