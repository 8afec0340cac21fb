"""HTTP routes: each one only translates between HTTP and the data plane."""
