"""The strangler: routes each legacy function to the legacy SQL, the ORM, or both."""
