"""HTTP edge shared by every function: the resolver, the error shape, and guards that run first."""
