"""Example applications built on the service layer (not shipped with the package)."""
