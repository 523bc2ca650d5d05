"""The parameter table and ``isonet run``'s resumable pipeline over the steps."""
