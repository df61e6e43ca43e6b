"""`trainwright bench kernel`: sweep a Triton kernel's block sizes, measure, write a cuda report."""
