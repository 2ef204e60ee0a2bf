"""Legacy side: the psycopg2 code the application runs today, kept working until it is deleted."""
