"""The tables shared by more than one service, one module each: the SQL that writes them lives
only here."""
