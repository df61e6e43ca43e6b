"""The embedded example: the whole /train path on generated data, no GPU, no network."""
